//! Compile-time shape errors, checked against `.stderr` snapshots in `ui-tests/`.
//!
//! The `pass` case makes trybuild run `cargo build` instead of `cargo check`, so errors raised
//! by `const { assert!(..) }` after monomorphisation (reshape, realize) are seen too. Regenerate
//! the snapshots with `TRYBUILD=overwrite cargo test --test ui` after a toolchain change.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
    // Mixing devices in one op (needs the `Cuda` type, so the `cuda` feature).
    #[cfg(feature = "cuda")]
    {
        t.pass("ui-tests/cuda/pass_*.rs");
        t.compile_fail("ui-tests/cuda/device_mix*.rs");
    }
}
