//! The generated protobuf and gRPC code for `perfstats.v1`, and its descriptor set.

tonic::include_proto!("perfstats.v1");

/// The encoded `FileDescriptorSet` of `proto/`, served by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("perfstats_descriptor");
