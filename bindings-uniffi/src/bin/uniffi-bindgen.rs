//! `uniffi-bindgen`: generates the Kotlin and Swift sources from the built library
//! (`generate <lib> --language kotlin --language swift --out-dir <dir>`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
