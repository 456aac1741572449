//! Runs one input file through a target on the stable toolchain, to reproduce a crash
//! without libFuzzer: `cargo run --manifest-path fuzz/Cargo.toml --example run_input --
//! <target> <file>...`. `USTACK_FUZZ_VERBOSE=1` prints what an `rx_path` input did.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: run_input <target> <file>...");
    for f in args {
        let data = std::fs::read(&f).expect("read input");
        eprintln!("{target}: {f} ({} bytes)", data.len());
        ustack_fuzz::run_target(&target, &data);
    }
    eprintln!("ok");
}
