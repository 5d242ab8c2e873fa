//! Keep secrets out of what the agent prints: the values of properties and JAAS
//! options whose names say they are secret (`awsRoleSecretAccessKey`,
//! `awsSessionToken`, `ssl.key.password`, ...) are replaced by `<redacted>`.

const SECRET_WORDS: &[&str] = &["secret", "token", "password", "credential"];
pub const REDACTED: &str = "<redacted>";

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

/// Redact one line of properties text (or of a diff of it).
fn redact_line(line: &str) -> String {
    // A `key=value` or `key: value` line whose key is secret: the whole value goes.
    let body = line.trim_start_matches(['+', '-', ' ', '\t']);
    if let Some(i) = body.find(['=', ':']) {
        let key = body[..i].trim();
        if !key.is_empty() && key.bytes().all(is_name_byte) && is_secret_name(key) {
            let prefix_len = line.len() - body.len() + i + 1;
            return format!("{}{REDACTED}", &line[..prefix_len]);
        }
    }
    // JAAS options inside a value: `name=value` or `name="value"` (quotes maybe escaped).
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && is_name_byte(bytes[start - 1]) {
            start -= 1;
        }
        if start == i || !is_secret_name(&line[start..i]) {
            i += 1;
            continue;
        }
        // The value: up to the closing quote, or to whitespace or `;`.
        let mut j = i + 1;
        let quoted = |j: usize| -> Option<usize> {
            if bytes.get(j) == Some(&b'"') {
                Some(1)
            } else if bytes.get(j) == Some(&b'\\') && bytes.get(j + 1) == Some(&b'"') {
                Some(2)
            } else {
                None
            }
        };
        let end = if let Some(q) = quoted(j) {
            j += q;
            while j < bytes.len() && quoted(j).is_none() {
                j += 1;
            }
            j
        } else {
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b';' {
                j += 1;
            }
            j
        };
        let value_start = i + 1 + quoted(i + 1).unwrap_or(0);
        out.push_str(&line[copied..value_start]);
        out.push_str(REDACTED);
        copied = end;
        i = end.max(i + 1);
    }
    out.push_str(&line[copied.min(line.len())..]);
    out
}

/// `text` with every secret value replaced by [`REDACTED`], line by line.
pub fn redact(text: &str) -> String {
    let mut out: String = text
        .split_inclusive('\n')
        .map(|l| match l.strip_suffix('\n') {
            Some(body) => redact_line(body) + "\n",
            None => redact_line(l),
        })
        .collect();
    if text.is_empty() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_options_and_secret_keys_are_redacted() {
        let jaas = "+sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required \
                    awsRoleArn=\"arn:aws:iam::1:role/r\" awsRoleAccessKeyId=\"AKIA1\" \
                    awsRoleSecretAccessKey=\"s3cr/et+\" awsSessionToken=tok3n;\n";
        let out = redact(jaas);
        assert!(!out.contains("s3cr/et+"), "{out}");
        assert!(!out.contains("tok3n"), "{out}");
        assert!(
            out.contains("awsRoleArn=\"arn:aws:iam::1:role/r\""),
            "{out}"
        );
        assert!(
            out.contains("awsRoleSecretAccessKey=\"<redacted>\""),
            "{out}"
        );
        assert!(out.contains("awsSessionToken=<redacted>;"), "{out}");
        // Escaped quotes, as in a .properties value written by hand.
        let esc = "x=a awsRoleSecretAccessKey=\\\"abc def\\\" b=c";
        assert_eq!(
            redact(esc),
            "x=a awsRoleSecretAccessKey=\\\"<redacted>\\\" b=c"
        );
        assert_eq!(
            redact("-ssl.key.password = hunter2 x\n ksql.service.id=a\n"),
            "-ssl.key.password =<redacted>\n ksql.service.id=a\n"
        );
        let plain = "bootstrap.servers=b-1:9098\n# comment: with token words\n";
        assert_eq!(
            redact(plain),
            "bootstrap.servers=b-1:9098\n# comment: with token words\n"
        );
    }
}
