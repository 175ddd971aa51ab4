//! The ROAR/KAR retrain cache shared by processes (issue #14): writes are atomic and leave no
//! temporary file, a point another process is retraining is waited for and then read (not
//! retrained), a point whose holder died is taken over, and a held point lock is kept fresh by
//! its heartbeat while a lock that is not refreshed goes stale.
use dfdx::prelude::*;
use salient_engine::metrics::roar::{Claim, RetrainCache, RetrainRecord, POINT_LOCK};
use salient_engine::store::{lock_file, Lock, LockPolicy};
use salient_engine::EngineError;
use salient_ir::{Experiment, IR_VERSION};
use salient_nn::Network;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const SPEC: &str = r#"
experiment cache
data synthetic { shape = (1, 4, 4)  classes = 2  train = 8  test = 8  noise = 0.2  seed = 1 }
model net { flatten dense(out = 2) }
train { optimizer = sgd  lr = 0.1  epochs = 1  batch = 4  seed = 0 }
regime standard
"#;

fn experiment() -> Experiment {
    let out = salient_lang::check("cache.exp", SPEC);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    out.experiment
        .unwrap_or_else(|| panic!("spec does not check: {msgs:?}"))
}

fn net(exp: &Experiment, seed: u64) -> Network<Cpu> {
    Network::new(
        &exp.models[0],
        &exp.data.mean,
        &exp.data.std,
        seed,
        &Cpu::default(),
    )
    .unwrap()
}

fn record(key: &str, accuracy: f64) -> RetrainRecord {
    RetrainRecord {
        ir_version: IR_VERSION,
        key: key.into(),
        label: format!("point {key}"),
        inputs: serde_json::json!({ "key": key }),
        test_accuracy: accuracy,
        log: Vec::new(),
        train_seconds: 0.5,
    }
}

/// The names in a point's folder.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn concurrent_saves_of_one_point_leave_one_complete_record() {
    let exp = Arc::new(experiment());
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(RetrainCache::new(dir.path()));
    // Eight writers of the same point at once (duplicate computation: atomic writes alone must
    // keep the point whole), each with its own weights and accuracy.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (exp, cache) = (exp.clone(), cache.clone());
            std::thread::spawn(move || {
                let net = net(&exp, t);
                for _ in 0..5 {
                    cache
                        .save(&record("k", t as f64 / 10.0), &net)
                        .expect("save");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = cache.load("k").expect("a complete record");
    assert!((0..8).any(|t| got.test_accuracy == t as f64 / 10.0));
    assert_eq!(names(&cache.dir("k")), ["model.safetensors", "record.json"]);
    // Readable as written by a plain write (the temporary files are created private).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.dir("k").join("record.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o044, 0o044, "{mode:o}");
    }
}

#[test]
fn a_point_being_retrained_elsewhere_is_waited_for_and_read() {
    let exp = experiment();
    let dir = tempfile::tempdir().unwrap();
    let cache = RetrainCache::new(dir.path());
    let never = AtomicBool::new(false);
    let poll = Duration::from_millis(10);
    // The first claimant gets the lock.
    let Claim::Mine(lock) = cache
        .claim("p", &never, poll, |_| panic!("nothing to wait for"))
        .unwrap()
    else {
        panic!("an empty cache has nothing cached");
    };
    let lock_path = cache.dir("p").join(POINT_LOCK);
    let holder = std::fs::read_to_string(&lock_path).unwrap();
    assert!(
        holder.contains(&format!("pid={}", std::process::id())),
        "{holder}"
    );
    // A second claimant (another thread: the same live pid, so never stale) waits until the
    // first one has saved, then reads the record instead of retraining.
    let waited = std::thread::scope(|s| {
        let second = s.spawn(|| {
            let mut told = Vec::new();
            let claim = cache
                .claim("p", &never, poll, |h| told.push(h.to_string()))
                .unwrap();
            (claim, told)
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!second.is_finished(), "the second claimant waits");
        cache.save(&record("p", 0.75), &net(&exp, 0)).unwrap();
        drop(lock);
        second.join().unwrap()
    });
    match waited {
        (Claim::Cached(r), told) => {
            assert_eq!(r.test_accuracy, 0.75);
            assert_eq!(told.len(), 1, "told once that it waits: {told:?}");
            assert_eq!(told[0], holder.trim());
        }
        (Claim::Mine(_), _) => panic!("the point was retrained twice"),
    }
    assert!(!lock_path.exists(), "the lock goes with its holder");

    // A holder that gives up without a record (failed, interrupted): the waiter takes over.
    let Claim::Mine(lock) = cache.claim("q", &never, poll, |_| {}).unwrap() else {
        panic!("q is not cached");
    };
    let taken = std::thread::scope(|s| {
        let second = s.spawn(|| cache.claim("q", &never, poll, |_| {}).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        drop(lock);
        second.join().unwrap()
    });
    assert!(matches!(taken, Claim::Mine(_)), "{taken:?}");
    drop(taken);
    // Given up without a record, the point leaves no folder behind (the other points' stay).
    assert!(!cache.dir("q").exists());
    assert!(cache.dir("p").join("record.json").is_file());

    // Ctrl-C while waiting: an error, not a wait without end.
    let Claim::Mine(_held) = cache.claim("r", &never, poll, |_| {}).unwrap() else {
        panic!("r is not cached");
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let err = std::thread::scope(|s| {
        let waiter = s.spawn(|| cache.claim("r", &stop, poll, |_| {}));
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        waiter.join().unwrap()
    });
    assert!(matches!(err, Err(EngineError::Interrupted)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_dead_holders_point_lock_is_taken_over_and_a_live_one_is_kept_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let cache = RetrainCache::new(dir.path());
    let never = AtomicBool::new(false);
    std::fs::create_dir_all(cache.dir("d")).unwrap();
    let lock_path = cache.dir("d").join(POINT_LOCK);
    // A dead process of this host (a pid beyond Linux's pid_max).
    if !Path::new("/proc/self").exists() {
        panic!("this test needs Linux's /proc to make a lock whose process is dead");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        &lock_path,
        format!("pid=4194305 host={} since=0\n", host.trim()),
    )
    .unwrap();
    let claim = cache.claim("d", &never, Duration::from_millis(10), |h| {
        panic!("waited for a dead holder: {h}")
    });
    assert!(matches!(claim, Ok(Claim::Mine(_))), "{claim:?}");
    drop(claim);

    // A holder on another host, silent for longer than the stale age: taken over; within it,
    // held.
    let path = dir.path().join("other.lock");
    let policy = LockPolicy {
        stale_after: Duration::from_secs(600),
        heartbeat: None,
    };
    std::fs::write(&path, "pid=1 host=some-other-node since=0\n").unwrap();
    assert!(matches!(lock_file(&path, policy).unwrap(), Lock::Held(_)));
    let old = SystemTime::now() - Duration::from_secs(601);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let Lock::Acquired(taken) = lock_file(&path, policy).unwrap() else {
        panic!("a lock silent for 601 s is stale at 600 s");
    };
    drop(taken);
    assert!(!path.exists());

    // A live holder's heartbeat keeps its lock fresh past the stale age; without the heartbeat
    // the same lock would be taken over.
    let fast = LockPolicy {
        stale_after: Duration::from_millis(400),
        heartbeat: Some(Duration::from_millis(50)),
    };
    let Lock::Acquired(held) = lock_file(&path, fast).unwrap() else {
        panic!("a free lock is taken");
    };
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        matches!(lock_file(&path, fast).unwrap(), Lock::Held(_)),
        "a refreshed lock is not stale"
    );
    drop(held);
    assert!(!path.exists());
    let silent = LockPolicy {
        heartbeat: None,
        ..fast
    };
    let Lock::Acquired(held) = lock_file(&path, silent).unwrap() else {
        panic!("a free lock is taken");
    };
    std::thread::sleep(Duration::from_millis(900));
    let Lock::Acquired(second) = lock_file(&path, silent).unwrap() else {
        panic!("a lock silent for 900 ms is stale at 400 ms");
    };
    drop(second);
    drop(held);
    assert!(!path.exists());
}
