//! ksqlDB releases: download (`fetch`), signature and hash checks (`verify`), the
//! streaming unpacker, the manifest that binds a release to what was verified, and the
//! check that an installed release is still intact (`integrity`).

pub(crate) mod fetch;
pub(crate) mod integrity;
pub(crate) mod manifest;
pub mod unpack;
pub(crate) mod verify;
