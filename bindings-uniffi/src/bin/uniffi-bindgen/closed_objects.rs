//! Makes a call on a closed Kotlin object throw `TidingsException.Closed`.
//!
//! uniffi's generated Kotlin `close()` calls `destroy()`, which frees the Rust object; every later
//! call is refused in Kotlin, in the generated `callWithHandle`, before it reaches Rust, with
//! `IllegalStateException("Store object has already been destroyed")`. The library's error
//! vocabulary says a closed store (transaction, engine) is `Closed`, and that is what Kotlin
//! callers catch. So after generating, this binary rewrites that one line of the generated Kotlin
//! to `throw TidingsException.Closed(reason = "Store was closed")` (the class's own name), in every
//! object class.
//!
//! Plain string replacement, checked: if Kotlin was generated and the line is not there as
//! expected (a uniffi upgrade changed the template), the generator fails with a message saying
//! so, rather than leaving the IllegalStateException in place unnoticed. Only the `.kt` files
//! written by this run under `--out-dir` are touched (not companion files copied there before);
//! Swift output is left alone.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The check in uniffi's `callWithHandle` (uniffi 0.32's `ObjectTemplate.kt`), without indentation.
const DESTROYED: &str =
    r#"throw IllegalStateException("${this.javaClass.simpleName} object has already been destroyed")"#;

/// What replaces it: the library's own error, naming the class.
const CLOSED: &str = r#"throw TidingsException.Closed(reason = "${this.javaClass.simpleName} was closed")"#;

/// The start of `callWithHandle` in each object class: one check to rewrite per definition.
const CALL_WITH_HANDLE: &str = "fun <R> callWithHandle(";

/// Where the replacement's exception is declared (same package, same file).
const ERROR_CLASS: &str = "sealed class TidingsException";
const CLOSED_CLASS: &str = "class Closed(";

/// The Kotlin output of a `generate` command: its `--out-dir`, if given.
#[derive(Debug, PartialEq, Eq)]
pub struct KotlinRun {
    pub out_dir: Option<PathBuf>,
}

/// Whether the arguments (program name first) ask `generate` for Kotlin: `--language kotlin`,
/// or no `--language` at all. Returns its `--out-dir`/`-o` when it does. Minimal on purpose:
/// uniffi's own parser has the final word and reports malformed arguments itself.
pub fn kotlin_run(args: &[OsString]) -> Option<KotlinRun> {
    let words: Vec<Option<&str>> = args.iter().skip(1).map(|a| a.to_str()).collect();
    if words.first() != Some(&Some("generate")) {
        return None;
    }
    let mut languages = Vec::new();
    let mut out_dir = None;
    let mut i = 1;
    while i < words.len() {
        let next = || args.get(i + 2).cloned();
        match words[i] {
            Some("--language" | "-l") => {
                languages.extend(next().and_then(|v| v.into_string().ok()));
                i += 1;
            }
            Some("--out-dir" | "-o") => {
                out_dir = next().map(PathBuf::from);
                i += 1;
            }
            Some(word) => {
                if let Some(value) = word.strip_prefix("--language=") {
                    languages.push(value.to_owned());
                } else if let Some(value) = word.strip_prefix("--out-dir=") {
                    out_dir = Some(PathBuf::from(value));
                } else if let Some(value) = word.strip_prefix("-l").filter(|v| !v.is_empty()) {
                    languages.push(value.trim_start_matches('=').to_owned());
                } else if let Some(value) = word.strip_prefix("-o").filter(|v| !v.is_empty()) {
                    out_dir = Some(PathBuf::from(value.trim_start_matches('=')));
                }
            }
            None => {}
        }
        i += 1;
    }
    let kotlin = languages.is_empty() || languages.iter().any(|l| l.eq_ignore_ascii_case("kotlin"));
    kotlin.then_some(KotlinRun { out_dir })
}

/// The `.kt` files under `dir` with their modification times (none if `dir` does not exist).
pub type Snapshot = HashMap<PathBuf, Option<SystemTime>>;

/// Lists the `.kt` files under `dir`, before generating, to tell afterwards which were written.
pub fn snapshot(dir: &Path) -> Result<Snapshot, String> {
    let mut files = Snapshot::new();
    collect(dir, &mut files)?;
    Ok(files)
}

fn collect(dir: &Path, files: &mut Snapshot) -> Result<(), String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if kind.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "kt") {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            files.insert(path, modified);
        }
    }
    Ok(())
}

/// Rewrites the check in every `.kt` file under `dir` that is new or changed since `before`.
/// Fails if no such file exists (Kotlin was asked for) or one of them is not as expected.
pub fn rewrite_generated(dir: &Path, before: &Snapshot) -> Result<(), String> {
    let mut generated: Vec<PathBuf> = snapshot(dir)?
        .into_iter()
        .filter(|(path, modified)| before.get(path) != Some(modified))
        .map(|(p, _)| p)
        .collect();
    generated.sort();
    if generated.is_empty() {
        return Err(format!("Kotlin was generated, but no .kt file was written under {}", dir.display()));
    }
    let mut rewritten = 0;
    for path in &generated {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (new_text, count) = rewrite(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if count > 0 {
            fs::write(path, new_text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        rewritten += count;
    }
    if rewritten == 0 {
        let names: Vec<String> = generated.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("{}: the line `{DESTROYED}` was not found", names.join(", ")));
    }
    Ok(())
}

/// Replaces the check in one generated Kotlin file, keeping its indentation; returns the new text
/// and how many classes were rewritten. A file without objects (no `callWithHandle`) is returned
/// unchanged with 0; a file whose `callWithHandle` definitions do not each hold the check once, or
/// that does not declare `TidingsException.Closed`, is an error.
pub fn rewrite(text: &str) -> Result<(String, usize), String> {
    let definitions = text.matches(CALL_WITH_HANDLE).count();
    let mut count = 0;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim_start() == DESTROYED {
            let indent = &content[..content.len() - content.trim_start().len()];
            out.push_str(indent);
            out.push_str(CLOSED);
            out.push_str(&line[content.len()..]);
            count += 1;
        } else {
            out.push_str(line);
        }
    }
    if count != definitions {
        return Err(format!(
            "expected the line `{DESTROYED}` once in each of the {definitions} `callWithHandle` \
             definition(s), found it {count} time(s): has uniffi's Kotlin template changed? \
             (bindings-uniffi/src/bin/uniffi-bindgen/closed_objects.rs rewrites it)"
        ));
    }
    if count > 0 && !(text.contains(ERROR_CLASS) && text.contains(CLOSED_CLASS)) {
        return Err(format!("`TidingsException.Closed` is not declared here, so `{CLOSED}` cannot compile"));
    }
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, check: &str) -> String {
        format!(
            "open class {name}: Disposable, AutoCloseable, {name}Interface {{\n    \
             internal inline fun <R> callWithHandle(block: (handle: Long) -> R): R {{\n        \
             do {{\n            val c = this.callCounter.get()\n            if (c == 0L) {{\n                \
             {check}\n            }}\n        }} while (false)\n    }}\n}}\n"
        )
    }

    const ERRORS: &str = "sealed class TidingsException: kotlin.Exception() {\n    class Closed(\n        \
                          val `reason`: kotlin.String\n        ) : TidingsException()\n}\n";

    fn sample(check: &str) -> String {
        format!("{}{}{}{ERRORS}", object("Store", check), object("Transaction", check), object("DeliveryEngine", check))
    }

    #[test]
    fn every_class_is_rewritten_keeping_indentation() {
        let (text, count) = rewrite(&sample(DESTROYED)).unwrap();
        assert_eq!(count, 3);
        assert!(!text.contains("IllegalStateException"), "{text}");
        assert_eq!(text.matches(&format!("\n                {CLOSED}\n")).count(), 3, "{text}");
        assert_eq!(text, sample(CLOSED));
    }

    #[test]
    fn crlf_line_endings_are_kept() {
        let (text, count) = rewrite(&sample(DESTROYED).replace('\n', "\r\n")).unwrap();
        assert_eq!(count, 3);
        assert_eq!(text, sample(CLOSED).replace('\n', "\r\n"));
    }

    #[test]
    fn a_file_without_objects_is_left_alone() {
        let text = "package dev.tidings\n\nfun helper() = 1\n";
        assert_eq!(rewrite(text).unwrap(), (text.to_owned(), 0));
    }

    #[test]
    fn a_missing_line_is_an_error() {
        let changed = sample(r#"throw IllegalStateException("${this.javaClass.simpleName} was destroyed")"#);
        let error = rewrite(&changed).unwrap_err();
        assert!(error.contains("found it 0 time(s)"), "{error}");
    }

    #[test]
    fn a_class_missing_the_line_is_an_error() {
        let mixed = format!("{}{}{ERRORS}", object("Store", DESTROYED), object("Transaction", "error(\"gone\")"));
        let error = rewrite(&mixed).unwrap_err();
        assert!(error.contains("each of the 2"), "{error}");
    }

    #[test]
    fn the_closed_exception_must_exist() {
        let error = rewrite(&object("Store", DESTROYED)).unwrap_err();
        assert!(error.contains("not declared"), "{error}");
    }

    fn args(words: &[&str]) -> Vec<OsString> {
        std::iter::once("uniffi-bindgen").chain(words.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn arguments_name_kotlin_and_the_out_dir() {
        let run = |words: &[&str]| kotlin_run(&args(words));
        let dir = |d: &str| Some(KotlinRun { out_dir: Some(PathBuf::from(d)) });
        assert_eq!(
            run(&["generate", "lib.so", "--language", "kotlin", "--language", "swift", "--out-dir", "b"]),
            dir("b")
        );
        assert_eq!(run(&["generate", "lib.so", "-l", "kotlin", "-o", "b", "--no-format"]), dir("b"));
        assert_eq!(run(&["generate", "--language=kotlin", "--out-dir=b", "lib.so"]), dir("b"));
        assert_eq!(run(&["generate", "lib.so", "--out-dir", "b"]), dir("b"), "no language restriction");
        assert_eq!(run(&["generate", "lib.so", "--language", "kotlin"]), Some(KotlinRun { out_dir: None }));
        assert_eq!(run(&["generate", "lib.so", "--language", "swift", "--out-dir", "b"]), None);
        assert_eq!(run(&["scaffolding", "x.udl", "--out-dir", "b"]), None);
        assert_eq!(run(&["--help"]), None);
        assert_eq!(run(&[]), None);
    }

    #[test]
    fn only_files_written_since_the_snapshot_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("dev/tidings");
        fs::create_dir_all(&package).unwrap();
        // A companion file copied in before generation, mentioning the line in a comment.
        let companion = package.join("Companion.kt");
        let companion_text = format!("// uniffi would say: {DESTROYED}\n");
        fs::write(&companion, &companion_text).unwrap();
        let before = snapshot(dir.path()).unwrap();
        let generated = package.join("tidings_uniffi.kt");
        fs::write(&generated, sample(DESTROYED)).unwrap();
        fs::write(dir.path().join("Tidings.swift"), DESTROYED).unwrap();

        rewrite_generated(dir.path(), &before).unwrap();
        assert_eq!(fs::read_to_string(&generated).unwrap(), sample(CLOSED));
        assert_eq!(fs::read_to_string(&companion).unwrap(), companion_text);
        assert_eq!(fs::read_to_string(dir.path().join("Tidings.swift")).unwrap(), DESTROYED);
    }

    #[test]
    fn generated_kotlin_without_the_line_fails() {
        let dir = tempfile::tempdir().unwrap();
        let before = snapshot(dir.path()).unwrap();
        let error = rewrite_generated(dir.path(), &before).unwrap_err();
        assert!(error.contains("no .kt file was written"), "{error}");

        fs::write(dir.path().join("tidings_uniffi.kt"), "package dev.tidings\n").unwrap();
        let error = rewrite_generated(dir.path(), &before).unwrap_err();
        assert!(error.contains("was not found"), "{error}");
    }
}
