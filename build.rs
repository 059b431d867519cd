//! Generates the gRPC clients and servers from the vendored protos in `proto/`.
//!
//! `protox` parses the protos in pure Rust (no `protoc` install), `tonic-prost-build`
//! generates messages, clients and (behind the `testing` feature) servers, and the encoded
//! `FileDescriptorSet` is written next to them for proto3 JSON rendering at run time.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "google/longrunning/operations.proto",
    "google/rpc/status.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
    "google/cloud/vision/v1/product_search_service.proto",
    "google/cloud/vision/v1/product_search.proto",
    "google/cloud/vision/v1/image_annotator.proto",
    "google/cloud/vision/v1/geometry.proto",
    "google/cloud/vision/v1/text_annotation.proto",
    "google/cloud/vision/v1/web_detection.proto",
    "google/cloud/speech/v1/cloud_speech.proto",
    "google/cloud/speech/v1/resource.proto",
    // Built into protox; listed so that their descriptors are embedded and an `Any` holding
    // one of them renders as proto3 JSON (they map to prost-types, nothing is generated).
    "google/protobuf/any.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/wrappers.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // For dependents' build scripts (`links = "longrunning"`): `DEP_LONGRUNNING_PROTO_DIR`
    // is this directory, so that another API's protos can import ours and their generated
    // code can share our types (`extern_path`, see the README).
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    println!("cargo:proto_dir={}", manifest_dir.join("proto").display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;

    // The embedded copy drops comments (source info): JSON rendering needs only the types.
    // It is encoded by protox itself, which keeps the options' extensions (`google.api.http`,
    // the REST wire's rules for the start calls); prost's `FileDescriptorSet` drops them.
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(PROTOS)?;
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Servers exist for the in-process fake only; the lean library needs clients alone.
        .server_mod_attribute(".", "#[cfg(feature = \"testing\")]")
        .generate_default_stubs(true)
        .include_file("mod.rs")
        .emit_rerun_if_changed(false)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
