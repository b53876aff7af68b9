//! `{{action.id}}`-style placeholders in a policy's `do` actions, filled from the action,
//! the proposal and the initiator when the actions run.

use serde_json::Value;

const ROOTS: [&str; 3] = ["action", "proposal", "initiator"];

/// The placeholders in `text`, as paths (`action.id`).
///
/// # Errors
/// Names a placeholder that is not closed or does not start with a known root.
pub fn placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("`{text}` opens a {{{{ placeholder it never closes"))?;
        let path = after[..end].trim().to_string();
        let root = path.split('.').next().unwrap_or_default();
        if !ROOTS.contains(&root) {
            return Err(format!(
                "`{{{{{path}}}}}` is not a placeholder: it must start with action., proposal. or initiator."
            ));
        }
        out.push(path);
        rest = &after[end + 2..];
    }
    Ok(out)
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, key| v.get(key))
}

/// Fills the placeholders of one value. A string that is exactly one placeholder takes the
/// value's own type (a number stays a number); placeholders inside longer text are written as
/// text; an unknown path becomes empty text.
pub fn render(value: &Value, ctx: &Value) -> Value {
    match value {
        Value::String(s) => render_str(s, ctx),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, ctx)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render(v, ctx))).collect()),
        other => other.clone(),
    }
}

fn render_str(s: &str, ctx: &Value) -> Value {
    let trimmed = s.trim();
    if trimmed.starts_with("{{") && trimmed.ends_with("}}") && trimmed.matches("{{").count() == 1 {
        let path = trimmed[2..trimmed.len() - 2].trim();
        return lookup(ctx, path).cloned().unwrap_or(Value::String(String::new()));
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Value::String(out);
        };
        match lookup(ctx, after[..end].trim()) {
            Some(Value::String(v)) => out.push_str(v),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_whole_and_embedded_placeholders() {
        let ctx = json!({"action": {"id": 42, "description": "Laptop"}, "proposal": {"id": 7}});
        assert_eq!(render(&json!("{{action.id}}"), &ctx), json!(42));
        assert_eq!(
            render(&json!("Rejected: {{ action.description }} (#{{proposal.id}})"), &ctx),
            json!("Rejected: Laptop (#7)")
        );
        assert_eq!(render(&json!({"a": ["{{action.missing}}"]}), &ctx), json!({"a": [""]}));
    }

    #[test]
    fn placeholders_are_checked() {
        assert_eq!(placeholders("x {{action.id}} {{proposal.id}}").unwrap(), vec!["action.id", "proposal.id"]);
        assert!(placeholders("{{secrets.token}}").unwrap_err().contains("must start with"));
        assert!(placeholders("{{action.id").unwrap_err().contains("never closes"));
    }
}
