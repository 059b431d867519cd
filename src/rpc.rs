//! The RPCs this crate calls, in one table shared by the client, the Vision start calls and
//! the fake server.

// Public as the fake's `FakeMethod`; without the fake, some of it is the fake's only.
#![cfg_attr(not(feature = "testing"), allow(dead_code, unreachable_pub))]

use std::fmt;

/// One RPC this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `google.longrunning.Operations/GetOperation`
    GetOperation,
    /// `google.longrunning.Operations/ListOperations`
    ListOperations,
    /// `google.longrunning.Operations/CancelOperation`
    CancelOperation,
    /// `google.longrunning.Operations/DeleteOperation`
    DeleteOperation,
    /// `google.longrunning.Operations/WaitOperation`
    WaitOperation,
    /// `google.cloud.vision.v1.ProductSearch/ImportProductSets`
    ImportProductSets,
    /// `google.cloud.vision.v1.ProductSearch/PurgeProducts`
    PurgeProducts,
    /// `google.cloud.vision.v1.ImageAnnotator/AsyncBatchAnnotateFiles`
    AsyncBatchAnnotateFiles,
    /// `google.cloud.vision.v1.ImageAnnotator/AsyncBatchAnnotateImages`
    AsyncBatchAnnotateImages,
    /// `google.cloud.speech.v1.Speech/LongRunningRecognize` (another API, through the
    /// generic start call)
    LongRunningRecognize,
}

impl Method {
    /// Every method, in declaration order.
    pub const ALL: [Method; 10] = [
        Method::GetOperation,
        Method::ListOperations,
        Method::CancelOperation,
        Method::DeleteOperation,
        Method::WaitOperation,
        Method::ImportProductSets,
        Method::PurgeProducts,
        Method::AsyncBatchAnnotateFiles,
        Method::AsyncBatchAnnotateImages,
        Method::LongRunningRecognize,
    ];

    /// The request path, `/package.Service/Method`.
    pub const fn path(self) -> &'static str {
        match self {
            Method::GetOperation => "/google.longrunning.Operations/GetOperation",
            Method::ListOperations => "/google.longrunning.Operations/ListOperations",
            Method::CancelOperation => "/google.longrunning.Operations/CancelOperation",
            Method::DeleteOperation => "/google.longrunning.Operations/DeleteOperation",
            Method::WaitOperation => "/google.longrunning.Operations/WaitOperation",
            Method::ImportProductSets => "/google.cloud.vision.v1.ProductSearch/ImportProductSets",
            Method::PurgeProducts => "/google.cloud.vision.v1.ProductSearch/PurgeProducts",
            Method::AsyncBatchAnnotateFiles => {
                "/google.cloud.vision.v1.ImageAnnotator/AsyncBatchAnnotateFiles"
            }
            Method::AsyncBatchAnnotateImages => {
                "/google.cloud.vision.v1.ImageAnnotator/AsyncBatchAnnotateImages"
            }
            Method::LongRunningRecognize => "/google.cloud.speech.v1.Speech/LongRunningRecognize",
        }
    }

    /// The method's name, e.g. `GetOperation`, as errors and logs give it.
    pub const fn name(self) -> &'static str {
        match self {
            Method::GetOperation => "GetOperation",
            Method::ListOperations => "ListOperations",
            Method::CancelOperation => "CancelOperation",
            Method::DeleteOperation => "DeleteOperation",
            Method::WaitOperation => "WaitOperation",
            Method::ImportProductSets => "ImportProductSets",
            Method::PurgeProducts => "PurgeProducts",
            Method::AsyncBatchAnnotateFiles => "AsyncBatchAnnotateFiles",
            Method::AsyncBatchAnnotateImages => "AsyncBatchAnnotateImages",
            Method::LongRunningRecognize => "LongRunningRecognize",
        }
    }

    /// Whether it is one of `google.longrunning.Operations`' RPCs (not a start call).
    pub fn is_operations(self) -> bool {
        matches!(
            self,
            Method::GetOperation
                | Method::ListOperations
                | Method::WaitOperation
                | Method::CancelOperation
                | Method::DeleteOperation
        )
    }

    /// Its position in [`Method::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The method part of a request path (after the last `/`).
pub(crate) fn method_name(path: &'static str) -> &'static str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn every_path_is_an_rpc_of_the_vendored_protos() {
        let set =
            prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let known: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect();
        for method in Method::ALL {
            assert!(known.iter().any(|k| k == method.path()), "{method:?}");
            assert_eq!(Method::ALL[method.index()], method);
        }
        for method in Method::ALL {
            assert_eq!(method.name(), method_name(method.path()));
        }
    }
}
