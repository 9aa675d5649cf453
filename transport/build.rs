fn main() {
    println!("cargo:rerun-if-changed=proto/boxoffice.proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/boxoffice.proto"], &["proto"])
        .expect("compile proto/boxoffice.proto (is protoc installed?)");
}
