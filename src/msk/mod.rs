//! Amazon MSK and the AWS side: broker discovery through the MSK API, the SDK's HTTP
//! client, the instance metadata (IMDS), and the IAM policy ksqlDB needs.

pub(crate) mod aws_http;
pub mod discovery;
pub(crate) mod iam_policy;
pub(crate) mod imds;
