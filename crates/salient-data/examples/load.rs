//! Load a dataset and print what was loaded and how long it took.
//!
//! `cargo run --release -p salient-data --example load -- [mnist|fashion_mnist|idx|cifar10] DIR`
//! (default: mnist data/mnist). For cifar10 every `*.bin` in DIR is used for both splits unless
//! the official `data_batch_*.bin` / `test_batch.bin` are present.

use salient_data::load;
use salient_ir::{DataKind, DataSpec, ImageShape};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map(String::as_str).unwrap_or("mnist");
    let dir = args.get(1).cloned().unwrap_or_else(|| "data/mnist".into());
    let (kind, shape) = match kind {
        "mnist" => (DataKind::Mnist, (1, 28, 28)),
        "fashion_mnist" => (DataKind::FashionMnist, (1, 28, 28)),
        "idx" => (DataKind::Idx, (1, 28, 28)),
        "cifar10" => (cifar_files(&dir), (3, 32, 32)),
        other => {
            eprintln!("unknown kind {other}: use mnist, fashion_mnist, idx or cifar10");
            return ExitCode::FAILURE;
        }
    };
    let spec = DataSpec {
        kind,
        dir,
        train: None,
        test: None,
        mean: vec![0.0; shape.0],
        std: vec![1.0; shape.0],
        shape: ImageShape {
            c: shape.0,
            h: shape.1,
            w: shape.2,
        },
        classes: 10,
    };
    let start = Instant::now();
    match load(&spec) {
        Ok(s) => {
            println!("loaded in {:.3} s", start.elapsed().as_secs_f64());
            println!(
                "train {} examples, classes {:?}",
                s.train.len(),
                s.train.class_counts()
            );
            println!(
                "test  {} examples, classes {:?}",
                s.test.len(),
                s.test.class_counts()
            );
            println!("train channel mean {:?}", s.train.channel_mean());
            for f in &s.files {
                println!("file {} {} bytes sha256 {}", f.name, f.len, f.sha256);
            }
            println!("fingerprint {}", s.fingerprint);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The official batch names if present in `dir`, else every `*.bin` there for both splits.
fn cifar_files(dir: &str) -> DataKind {
    let p = std::path::Path::new(dir);
    if p.join("test_batch.bin").is_file() {
        return DataKind::Cifar10 {
            train_files: (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            test_files: vec!["test_batch.bin".into()],
        };
    }
    let mut bins: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".bin"))
                .collect()
        })
        .unwrap_or_default();
    bins.sort();
    DataKind::Cifar10 {
        train_files: bins.clone(),
        test_files: bins,
    }
}
