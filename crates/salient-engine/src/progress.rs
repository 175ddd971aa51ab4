//! Progress display: one indicatif bar per training run (epoch, step, loss, accuracy, img/s,
//! ETA), and one log line per finished epoch. `quiet` turns both off.
use crate::train::EpochLog;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct RunProgress {
    bar: Option<ProgressBar>,
    run: String,
}

impl RunProgress {
    pub fn new(run: &str, quiet: bool) -> Self {
        let bar = (!quiet).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:28.cyan/blue}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(run.to_string());
            bar
        });
        RunProgress {
            bar,
            run: run.to_string(),
        }
    }

    pub fn start(&self, total_steps: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total_steps);
            bar.set_position(0);
        }
    }

    /// Count `steps` already done (a run resumed from an epoch checkpoint).
    pub fn advance(&self, steps: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(steps);
            bar.reset_eta();
        }
    }

    pub fn step(
        &self,
        epoch: usize,
        epochs: usize,
        loss: f64,
        accuracy: f64,
        images_per_second: f64,
    ) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "epoch {epoch}/{epochs} loss {loss:.4} acc {:.2}% {images_per_second:.0} img/s",
                accuracy * 100.0
            ));
        }
    }

    pub fn epoch_done(&self, e: &EpochLog, epochs: usize) {
        if self.bar.is_some() {
            self.line(format!(
                "{} epoch {}/{}: loss {:.4}, train acc {:.2}%, test acc {:.2}%, {:.0} img/s, {:.1}s",
                self.run,
                e.epoch,
                epochs,
                e.loss,
                e.train_accuracy * 100.0,
                e.test_accuracy * 100.0,
                e.images_per_second,
                e.seconds
            ));
        }
    }

    /// A line above the bar (or on stderr without a bar, unless quiet).
    pub fn note(&self, msg: &str) {
        if self.bar.is_some() {
            self.line(msg.to_string());
        }
    }

    /// Print above the bar on a terminal; plain stderr lines otherwise (logs, CI), where
    /// indicatif draws nothing.
    fn line(&self, msg: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(msg),
            _ => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
