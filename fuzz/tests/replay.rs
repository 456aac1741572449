//! Stable-toolchain checks of the fuzz targets (run by `cargo test --manifest-path
//! fuzz/Cargo.toml`): every seed in `fuzz/corpus/<target>/` and every saved crash in
//! `fuzz/regressions/<target>/` runs through its target, plus a few thousand
//! pseudo-random inputs per target, so the harnesses and the fixed bugs stay covered
//! where no nightly toolchain (and so no libFuzzer) is available.

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn seeds_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for t in ustack_fuzz::TARGETS {
        for sub in ["corpus", "regressions"] {
            for f in files(&root.join(sub).join(t)) {
                let data = std::fs::read(&f).unwrap();
                eprintln!("{t}: {}", f.display());
                ustack_fuzz::run_target(t, &data);
                n += 1;
            }
        }
    }
    assert!(n > 0, "no seed corpus found under fuzz/corpus");
}

#[test]
fn random_inputs_smoke() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let iters: usize = std::env::var("FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut rng = ustack_netdev::rng::SplitMix64::new(0x5eed);
    for t in ustack_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = files(&root.join("corpus").join(t))
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        for i in 0..iters {
            // Half pure noise, half a seed with a few bytes mutated.
            let mut data = match seeds.get(i % seeds.len().max(1)) {
                Some(seed) if i % 2 == 0 => seed.clone(),
                _ => {
                    let len = rng.below(600) as usize;
                    rng.bytes(len)
                }
            };
            if !data.is_empty() {
                for _ in 0..1 + rng.below(4) {
                    let k = rng.below(data.len() as u64) as usize;
                    data[k] = rng.next_u64() as u8;
                }
            }
            ustack_fuzz::run_target(t, &data);
        }
    }
}

/// Inputs of bugs still open (`fuzz/regressions/open/<target>/`): they must fail until
/// fixed. Run with `cargo test --manifest-path fuzz/Cargo.toml --
/// --ignored`; once one passes, move it to `fuzz/regressions/<target>/`.
#[test]
#[ignore = "open bugs: see fuzz/regressions/open and the ignored tests in crates/*/tests/fuzz_regressions.rs"]
fn open_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for t in ustack_fuzz::TARGETS {
        for f in files(&root.join("regressions").join("open").join(t)) {
            let data = std::fs::read(&f).unwrap();
            eprintln!("{t}: {}", f.display());
            ustack_fuzz::run_target(t, &data);
        }
    }
}
