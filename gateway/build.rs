//! Compiles Kubernetes' `generated.proto` files under `proto/` into one descriptor set (`$OUT_DIR/k8s.bin`), which
//! the protobuf body decoder (`src/request/protobuf/`) loads at run time. protox is a protobuf compiler in Rust,
//! so building needs no `protoc`.

use std::path::{Path, PathBuf};

fn protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    protos(Path::new("proto"), &mut files)?;
    files.sort();
    let descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .open_files(files)?
        .encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("k8s.bin");
    std::fs::write(out, descriptors)?;
    Ok(())
}
