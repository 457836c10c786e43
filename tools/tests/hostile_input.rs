//! `edgelm-convert` fed what an unattended device's scripts get wrong: the output is the input
//! (directly, through a symbolic or a hard link), an existing folder, in a folder that does not
//! exist; the conversion is interrupted; a killed conversion left its temporary file. Each case
//! asserts the exit status, the message, the files left on disk and that the input is unchanged.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fixtures;

fn convert(input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgelm-convert"))
        .arg(input)
        .arg("-o")
        .arg(output)
        .output()
        .unwrap()
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A folder holding a copy of the tiny GGUF, `in.gguf`.
fn gguf_copy() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.gguf");
    std::fs::copy(fixtures().join("tiny-llama-gguf/q8_0.gguf"), &input).unwrap();
    let bytes = std::fs::read(&input).unwrap();
    (dir, input, bytes)
}

fn rejected(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(message), "expected {message:?} in: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn output_that_is_the_input_is_refused_through_any_link() {
    let (dir, input, before) = gguf_copy();
    std::os::unix::fs::symlink(&input, dir.path().join("sym.gguf")).unwrap();
    std::fs::hard_link(&input, dir.path().join("hard.gguf")).unwrap();
    for output in ["in.gguf", "sym.gguf", "hard.gguf"] {
        let out = convert(&input, &dir.path().join(output));
        rejected(&out, "is the input");
        assert_eq!(
            std::fs::read(&input).unwrap(),
            before,
            "{output}: the input changed"
        );
        assert!(dir.path().join("sym.gguf").is_symlink());
        assert_eq!(listing(dir.path()), ["hard.gguf", "in.gguf", "sym.gguf"]);
    }
    // A file of an input folder is an input too.
    let folder = dir.path().join("hf");
    std::fs::create_dir(&folder).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixtures().join("tiny-llama").join(f), folder.join(f)).unwrap();
    }
    let weights = std::fs::read(folder.join("model.safetensors")).unwrap();
    rejected(
        &convert(&folder, &folder.join("model.safetensors")),
        "is the input",
    );
    assert_eq!(std::fs::read(folder.join("model.safetensors")).unwrap(), weights);
}

#[test]
fn output_folder_problems_are_refused_before_converting() {
    let (dir, input, before) = gguf_copy();
    let sub = dir.path().join("out");
    std::fs::create_dir(&sub).unwrap();
    let t = Instant::now();
    rejected(&convert(&input, &sub), "is a folder");
    rejected(
        &convert(&input, &dir.path().join("missing/x.edgelm")),
        "does not exist",
    );
    // sysfs takes no new files, not even root's: the error names the output, not the
    // temporary file, once.
    let out = convert(&input, Path::new("/sys/x.edgelm"));
    rejected(&out, "writing /sys/x.edgelm: permission denied");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(".tmp"));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(listing(&sub).is_empty());
    assert_eq!(listing(dir.path()), ["in.gguf", "out"]);
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn stale_temporaries_of_dead_conversions_are_removed() {
    let (dir, input, _) = gguf_copy();
    // A process id above any pid_max is dead; pid 1 is alive; a name without a pid may be
    // anyone's.
    let dead = ".edgelm-4000000000-Xy12ab.tmp";
    for name in [dead, ".edgelm-1-Xy12ab.tmp", ".edgelm-Xy12ab.tmp"] {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    let out = convert(&input, &dir.path().join("out.edgelm"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(dead));
    assert_eq!(
        listing(dir.path()),
        [
            ".edgelm-1-Xy12ab.tmp",
            ".edgelm-Xy12ab.tmp",
            "in.gguf",
            "out.edgelm"
        ]
    );
}

#[test]
fn interrupted_conversions_leave_nothing() {
    let (dir, input, before) = gguf_copy();
    for signal in ["-INT", "-TERM"] {
        let output = dir.path().join("big.edgelm");
        // Random SmolLM2-135M weights: seconds of work, long enough to be interrupted.
        let child = Command::new(env!("CARGO_BIN_EXE_edgelm-convert"))
            .args(["--synthetic", "smollm2-135m", "--tokenizer-from"])
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !listing(dir.path()).iter().any(|n| n.ends_with(".tmp")) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no temporary file appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let kill = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status();
        assert!(kill.unwrap().success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_eq!(listing(dir.path()), ["in.gguf"], "{signal}");
    }
    assert_eq!(std::fs::read(&input).unwrap(), before);
}
