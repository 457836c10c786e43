//! `include/edgelm.h` is what cbindgen makes of `capi/src` now. `EDGELM_BLESS=1 cargo test
//! -p edgelm-capi --test header` rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen parses capi/src")
        .write(&mut generated);
    let path = crate_dir.join("../include/edgelm.h");
    if std::env::var_os("EDGELM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/edgelm.h is stale: run `EDGELM_BLESS=1 cargo test -p edgelm-capi --test header` and commit it"
    );
}
