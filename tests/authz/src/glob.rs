//! IAM's wildcards: `*` matches any run of characters (none included), `?` any one character.

/// Whether `text` matches `pattern`, case-sensitively.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `text` matches `pattern` ignoring ASCII case (action names).
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

/// ARN matching: the six colon-separated parts are compared one by one, each with wildcards,
/// so that `*` in the Region part never swallows the account.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| matches(p, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks_match_as_iam_documents() {
        assert!(matches("kms:*", "kms:PutKeyPolicy"));
        assert!(matches("key/mrk-*", "key/mrk-1234"));
        assert!(!matches("key/mrk-*", "key/1234abcd"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("us-?est-2", "us-west-2"));
        assert!(matches("*", ""));
        assert!(!matches("", "x"));
        assert!(matches_ignore_case("kms:create*", "kms:CreateAlias"));
    }

    #[test]
    fn an_arn_pattern_matches_part_by_part() {
        let arn = "arn:aws:kms:us-west-2:111122223333:key/mrk-1";
        assert!(arn_matches("arn:aws:kms:*:111122223333:key/mrk-*", arn));
        assert!(!arn_matches("arn:aws:kms:*:444455556666:key/mrk-*", arn));
        assert!(!arn_matches("arn:aws:kms:*:111122223333:alias/*", arn));
        assert!(arn_matches("*", arn));
        // A `*` stays within its part: it cannot stand for "us-west-2:111122223333".
        assert!(!arn_matches("arn:aws:kms:*:key/mrk-1", arn));
    }
}
