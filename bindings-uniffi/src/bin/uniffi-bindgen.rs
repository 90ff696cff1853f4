//! `uniffi-bindgen`: generates the Kotlin and Swift sources from the built library
//! (`generate <lib> --language kotlin --language swift --out-dir <dir>`).
//!
//! uniffi's own generator, then one rewrite of the generated Kotlin (see `closed_objects`): a call
//! on a closed `Store`, `Transaction` or `DeliveryEngine` throws `TidingsException.Closed`.

// In a folder of its own: a file directly in src/bin/ would be taken by cargo for another binary.
#[path = "uniffi-bindgen/closed_objects.rs"]
mod closed_objects;

use std::process::exit;

fn main() {
    // uniffi parses the arguments itself; read them here only to know whether, and where, it
    // writes Kotlin.
    let args: Vec<_> = std::env::args_os().collect();
    let kotlin = closed_objects::kotlin_run(&args);
    let before = match kotlin.as_ref().and_then(|run| run.out_dir.as_deref()).map(closed_objects::snapshot) {
        Some(Err(e)) => fail(&e),
        before => before.and_then(Result::ok),
    };

    uniffi::uniffi_bindgen_main(); // exits non-zero itself on failure

    if let Some(run) = kotlin {
        let (Some(dir), Some(before)) = (run.out_dir, before) else {
            fail("Kotlin was generated, but its --out-dir could not be read from the arguments");
        };
        if let Err(e) = closed_objects::rewrite_generated(&dir, &before) {
            fail(&e);
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("uniffi-bindgen: cannot make closed objects throw TidingsException.Closed: {message}");
    exit(1)
}
