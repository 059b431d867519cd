//! Code generated from the vendored protos (see `proto/README.md`), and their descriptors.
//!
//! Nothing here is written by hand: `build.rs` regenerates it on every change to `proto/`.
//! The short paths [`longrunning`], [`rpc`], [`vision`] and [`speech`] name the packages users
//! need most. Speech v1 is here to show (and test) the generic start call on another API.

#![allow(missing_docs, clippy::all, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

pub use google::cloud::speech::v1 as speech;
pub use google::cloud::vision::v1 as vision;
pub use google::longrunning;
pub use google::rpc;

/// The encoded `google.protobuf.FileDescriptorSet` of every vendored proto and its imports,
/// for proto3 JSON rendering and reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));
