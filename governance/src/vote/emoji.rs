//! Reaction emoji and the options they stand for. Platforms name emoji differently
//! (Discord sends 👍, Slack sends `+1` or `thumbsup::skin-tone-2`, the console takes `:+1:`), so
//! everything is normalized to the unicode emoji before it is compared.

/// 👍, 👎 and 🤷: yes, no and abstain.
pub const YES: &str = "👍";
pub const NO: &str = "👎";
pub const ABSTAIN: &str = "🤷";

/// 1️⃣ … 🔟 for the options of choice, approval and ranked votes.
pub const KEYCAPS: [&str; 10] = ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟"];

const SHORTCODES: &[(&str, &str)] = &[
    ("+1", YES),
    ("thumbsup", YES),
    ("thumbs_up", YES),
    ("-1", NO),
    ("thumbsdown", NO),
    ("thumbs_down", NO),
    ("shrug", ABSTAIN),
    ("person_shrugging", ABSTAIN),
    ("one", KEYCAPS[0]),
    ("two", KEYCAPS[1]),
    ("three", KEYCAPS[2]),
    ("four", KEYCAPS[3]),
    ("five", KEYCAPS[4]),
    ("six", KEYCAPS[5]),
    ("seven", KEYCAPS[6]),
    ("eight", KEYCAPS[7]),
    ("nine", KEYCAPS[8]),
    ("ten", KEYCAPS[9]),
    ("keycap_ten", KEYCAPS[9]),
];

/// The canonical form of a reaction: a shortcode (`:+1:`, `thumbsup`) becomes its unicode
/// emoji, skin tones and variation selectors are dropped, anything else is kept as given.
pub fn normalize(emoji: &str) -> String {
    let trimmed = emoji.trim();
    let name = trimmed.strip_prefix(':').and_then(|s| s.strip_suffix(':')).unwrap_or(trimmed);
    // Slack appends skin tones as `::skin-tone-N`.
    let name = name.split("::").next().unwrap_or(name);
    if let Some((_, e)) = SHORTCODES.iter().find(|(code, _)| code.eq_ignore_ascii_case(name)) {
        return (*e).to_string();
    }
    let digit_keycap = name.chars().next().filter(|c| c.is_ascii_digit() && *c != '0');
    if let Some(d) = digit_keycap
        && name.chars().skip(1).all(|c| c == '\u{FE0F}' || c == '\u{20E3}')
        && name.chars().count() > 1
    {
        return KEYCAPS[(d as usize) - ('1' as usize)].to_string();
    }
    // Drop skin-tone modifiers and a lone variation selector: 👍🏽 counts as 👍.
    let stripped: String =
        name.chars().filter(|c| !('\u{1F3FB}'..='\u{1F3FF}').contains(c) && *c != '\u{FE0F}').collect();
    if stripped == "🤷\u{200D}♂" || stripped == "🤷\u{200D}♀" {
        return ABSTAIN.to_string();
    }
    for canonical in [YES, NO, ABSTAIN] {
        if stripped == canonical {
            return canonical.to_string();
        }
    }
    if let Some(k) = KEYCAPS.iter().find(|k| k.replace('\u{FE0F}', "") == stripped) {
        return (*k).to_string();
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_and_variants_normalize() {
        for e in [":+1:", ":thumbsup:", "+1", "thumbsup", "👍", "👍🏽", "+1::skin-tone-3"] {
            assert_eq!(normalize(e), YES, "{e}");
        }
        for e in [":-1:", "thumbsdown", "👎", "👎🏿"] {
            assert_eq!(normalize(e), NO, "{e}");
        }
        assert_eq!(normalize(":shrug:"), ABSTAIN);
        assert_eq!(normalize("🤷‍♀️"), ABSTAIN);
        assert_eq!(normalize(":one:"), KEYCAPS[0]);
        assert_eq!(normalize("1️⃣"), KEYCAPS[0]);
        assert_eq!(normalize("3\u{20E3}"), KEYCAPS[2]);
        assert_eq!(normalize(":keycap_ten:"), KEYCAPS[9]);
        assert_eq!(normalize("🎉"), "🎉");
        assert_eq!(normalize(":tada:"), "tada");
    }
}
