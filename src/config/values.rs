//! Value parsers: sizes, templates, versions, URLs, fingerprints, ARNs, region and
//! cluster names. Pure functions of a string, shared by loading and `config set`.

/// A parsed MSK cluster ARN: `arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterArn {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub uuid: String,
}

impl ClusterArn {
    pub fn parse(arn: &str) -> std::result::Result<ClusterArn, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(format!(
                "{arn:?} is not an ARN (expected arn:aws:kafka:<region>:<account>:cluster/<name>/<id>)"
            ));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !partition.starts_with("aws") {
            return Err(format!(
                "{arn:?}: partition {partition:?} is not an AWS partition"
            ));
        }
        if service != "kafka" {
            return Err(format!(
                "{arn:?}: service is {service:?}, expected \"kafka\""
            ));
        }
        if !is_region(region) {
            return Err(format!("{arn:?}: {region:?} is not an AWS region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{arn:?}: account {account:?} is not 12 digits"));
        }
        let res: Vec<&str> = resource.split('/').collect();
        if res.len() != 3 || res[0] != "cluster" {
            return Err(format!(
                "{arn:?}: resource {resource:?} is not cluster/<name>/<id> (is this a cluster ARN?)"
            ));
        }
        if !is_cluster_name(res[1]) {
            return Err(format!("{arn:?}: {:?} is not a valid cluster name", res[1]));
        }
        if res[2].is_empty()
            || !res[2]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("{arn:?}: cluster id {:?} is not valid", res[2]));
        }
        Ok(ClusterArn {
            arn: arn.to_string(),
            partition: partition.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            name: res[1].to_string(),
            uuid: res[2].to_string(),
        })
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, ...
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// MSK cluster names: 1–64 of letters, digits and hyphens, starting with a letter or digit.
pub fn is_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
}

/// `"4096"`, `"512k"`, `"512m"`, `"4g"` (binary units) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// Expand `{version}`, `{major_minor}` and `{archive_url}` in a URL template.
pub fn expand_template(
    template: &str,
    vars: &[(&str, &str)],
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed '{{' in {:?}", redact_url(template)));
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                let known: Vec<String> = vars.iter().map(|(k, _)| format!("{{{k}}}")).collect();
                return Err(format!(
                    "unknown placeholder {{{name}}} in {:?} (known: {})",
                    redact_url(template),
                    known.join(", ")
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `0.29.0` → `0.29`.
pub fn major_minor(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    Some(format!("{major}.{minor}"))
}

pub fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+_".contains(&b))
}

pub(super) fn check_http_url(url: &str) -> std::result::Result<(), String> {
    check_no_control(url)?;
    let shown = redact_url(url);
    match url::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(())
        }
        Ok(u) => Err(format!(
            "{shown:?}: scheme {:?} is not http or https",
            u.scheme()
        )),
        Err(e) => Err(format!("{shown:?} is not a URL ({e})")),
    }
}

/// Refuse control characters (newline, tab, NUL, DEL, escape...) in a URL value: the
/// URL parser drops some silently, and the raw string would then forge log lines or
/// land in the properties file.
pub(super) fn check_no_control(text: &str) -> std::result::Result<(), String> {
    match text.char_indices().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(format!(
            "{:?} contains a control character (U+{:04X} at byte {at}); URLs must not",
            redact_url(text),
            c as u32
        )),
    }
}

/// `url` with any credentials (`user:password@`) replaced by `***@`, for everything
/// that shows a configured URL: errors, logs, STATUS, the dry-run diff, the manifest.
/// Works on text, so templates and malformed URLs are hidden too; other text is kept.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &url[..authority_start],
            &url[authority_start + at..]
        ),
        None => url.to_string(),
    }
}

/// Display wrapper for [`redact_url`]: `format!("{}", RedactedUrl(&url))`.
pub struct RedactedUrl<'a>(pub &'a str);

impl std::fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.0))
    }
}

/// An OpenPGP fingerprint, normalised: spaces dropped, upper case; v4 (40) or v6 (64) hex digits.
pub fn normalize_fingerprint(fp: &str) -> Option<String> {
    let hex: String = fp
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_start_matches("0x")
        .to_ascii_uppercase();
    ((hex.len() == 40 || hex.len() == 64) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hex)
}

/// A JVM size with its unit, as `-Xmx` takes it: "4g", "512m", "1048576k". A bare
/// number is refused: the JVM reads it as bytes, and a heap of 4096 bytes never starts.
pub(super) fn is_heap(s: &str) -> bool {
    let Some(digits) = s.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']) else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}
