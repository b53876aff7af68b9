//! Human durations as written in policies and on the console: `90s`, `15m`, `72h`, `3d`, `1w`,
//! and sums of them (`1d12h`).

use chrono::TimeDelta;

/// Parses a duration such as `72h` or `1d12h`.
///
/// # Errors
/// Returns a message naming the part that is not understood.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("a duration is empty: write e.g. 90s, 15m, 72h or 3d".into());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ if c.is_whitespace() => {
                return Err(format!("`{text}` is not a duration: write it without spaces, e.g. 1d12h"));
            }
            _ if c.is_control() => {
                return Err(format!("`{text}` is not a duration: it holds a control character"));
            }
            _ => {
                return Err(format!("`{text}` is not a duration: unknown unit `{c}` (use s, m, h, d or w)"));
            }
        };
        if digits.is_empty() {
            return Err(format!("`{text}` is not a duration: `{c}` has no number before it"));
        }
        let n: i64 = digits.parse().map_err(|_| format!("`{text}` is not a duration: the number is too large"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    if !digits.is_empty() {
        return Err(format!("`{text}` is not a duration: the number {digits} has no unit (s, m, h, d or w)"));
    }
    // Ten years is far beyond any sensible vote and keeps date arithmetic in range.
    if total > 10 * 365 * 86_400 {
        return Err(format!("`{text}` is longer than ten years"));
    }
    TimeDelta::try_seconds(total).ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Prints a duration the way it is written (`1d12h`, `90s` prints as `1m30s`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut s = d.num_seconds().max(0);
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
        if s >= unit {
            out.push_str(&format!("{}{}", s / unit, name));
            s %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_sums() {
        assert_eq!(parse_duration("90s").unwrap().num_seconds(), 90);
        assert_eq!(parse_duration("15m").unwrap().num_seconds(), 900);
        assert_eq!(parse_duration("72h").unwrap().num_seconds(), 72 * 3600);
        assert_eq!(parse_duration("3d").unwrap().num_seconds(), 3 * 86_400);
        assert_eq!(parse_duration("1w").unwrap().num_seconds(), 604_800);
        assert_eq!(parse_duration("1d12h").unwrap().num_seconds(), 36 * 3600);
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("3y").unwrap_err().contains("unknown unit `y`"));
        assert!(parse_duration("h").unwrap_err().contains("no number"));
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("5000d").unwrap_err().contains("ten years"));
    }

    #[test]
    fn spaces_and_control_characters_are_named_not_shown_as_units() {
        // Found by tests/fuzz.rs: these said "unknown unit ` `".
        assert_eq!(parse_duration("1 h").unwrap_err(), "`1 h` is not a duration: write it without spaces, e.g. 1d12h");
        assert_eq!(
            parse_duration("1d\t12h").unwrap_err(),
            "`1d\t12h` is not a duration: write it without spaces, e.g. 1d12h"
        );
        assert!(parse_duration("1\u{0}h").unwrap_err().ends_with("it holds a control character"));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["90s", "15m", "72h", "3d", "1d12h"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(parse_duration("90s").unwrap()), "1m30s");
    }
}
