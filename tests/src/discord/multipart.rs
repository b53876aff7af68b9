//! Reading a request body the way Discord does: JSON, or `multipart/form-data` whose part
//! `payload_json` holds the JSON and whose `files[N]` parts are attachments.

use serde_json::Value;

/// One part of a multipart body: its name, file name (for a file) and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content: Vec<u8>,
}

/// The JSON of a request body (`Null` when empty or not JSON) and its files as
/// `(filename, content as UTF-8)`, from the body and its `Content-Type`.
pub fn read_body(content_type: Option<&str>, body: &[u8]) -> (Value, Vec<(String, String)>) {
    if let Some(boundary) = content_type.and_then(boundary) {
        let parts = parse(body, &boundary);
        let mut json = Value::Null;
        let mut files = Vec::new();
        for p in parts {
            match p.filename {
                Some(f) => files.push((f, String::from_utf8_lossy(&p.content).into_owned())),
                None if p.name == "payload_json" => json = serde_json::from_slice(&p.content).unwrap_or(Value::Null),
                None => {}
            }
        }
        return (json, files);
    }
    if body.is_empty() {
        return (Value::Null, Vec::new());
    }
    (serde_json::from_slice(body).unwrap_or(Value::Null), Vec::new())
}

/// Whether a body's file parts are named as Discord matches them to `payload_json`'s
/// `attachments`: `files[N]`, each N once, and, when the payload lists attachments, each
/// listed there with its id and file name. A body without files passes.
pub fn files_match_payload(content_type: Option<&str>, body: &[u8], payload: &Value) -> bool {
    let Some(boundary) = content_type.and_then(boundary) else { return true };
    let files: Vec<Part> = parse(body, &boundary).into_iter().filter(|p| p.filename.is_some()).collect();
    let listed = payload["attachments"].as_array().cloned().unwrap_or_default();
    let mut seen = Vec::new();
    files.iter().all(|p| {
        let Some(id) = p.name.strip_prefix("files[").and_then(|r| r.strip_suffix(']')) else { return false };
        let fresh = !seen.contains(&id.to_string());
        seen.push(id.to_string());
        fresh
            && (listed.is_empty()
                || listed.iter().any(|a| {
                    let same_id =
                        a["id"].as_u64().map(|n| n.to_string()).or_else(|| a["id"].as_str().map(str::to_string));
                    same_id.as_deref() == Some(id) && a["filename"].as_str() == p.filename.as_deref()
                }))
    })
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"').to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// The parts of a multipart body delimited by `--boundary` (RFC 7578).
pub fn parse(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let Some(mut at) = find(body, &delimiter, 0) else { return parts };
    loop {
        let start = at + delimiter.len();
        // The closing delimiter is followed by `--`.
        if body.get(start..start + 2) == Some(b"--") {
            break;
        }
        let Some(next) = find(body, &delimiter, start) else { break };
        // The part sits between the CRLF after the delimiter and the CRLF before the next.
        let mut part = &body[start..next];
        part = part.strip_prefix(b"\r\n").unwrap_or(part);
        part = part.strip_suffix(b"\r\n").unwrap_or(part);
        if let Some(split) = find(part, b"\r\n\r\n", 0) {
            let headers = String::from_utf8_lossy(&part[..split]);
            let (name, filename) = disposition(&headers);
            parts.push(Part { name, filename, content: part[split + 4..].to_vec() });
        }
        at = next;
    }
    parts
}

/// The `name` and `filename` of a part's `Content-Disposition` header.
fn disposition(headers: &str) -> (String, Option<String>) {
    let mut name = String::new();
    let mut filename = None;
    for line in headers.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        if !key.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        for param in value.split(';').skip(1) {
            let Some((k, v)) = param.trim().split_once('=') else { continue };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "name" => name = v,
                "filename" => filename = Some(v),
                _ => {}
            }
        }
    }
    (name, filename)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_body_gives_its_payload_json_and_its_files() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"answer.txt\"\r\n\
                    Content-Type: text/plain\r\n\r\nline one\r\nline two\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"type\":4}\r\n--XyZ--\r\n";
        let (json, files) = read_body(Some("multipart/form-data; boundary=XyZ"), body.as_bytes());
        assert_eq!(json, serde_json::json!({ "type": 4 }));
        assert_eq!(files, vec![("answer.txt".to_string(), "line one\r\nline two".to_string())]);
    }

    #[test]
    fn a_json_body_is_read_as_json_and_an_empty_one_as_null() {
        assert_eq!(read_body(Some("application/json"), b"{\"a\":1}").0, serde_json::json!({ "a": 1 }));
        assert_eq!(read_body(None, b"").0, Value::Null);
        assert_eq!(boundary("multipart/form-data; boundary=\"q\""), Some("q".to_string()));
    }
}
