//! Name patterns shared by methods (`api.users.*`) and topics (`chat:**`): parsing, matching, specificity.

use std::cmp::Ordering;

/// The separator between segments: `.` for method names, `:` for topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// `api.users.list`
    Dot,
    /// `chat:room:42`
    Colon,
}

impl Separator {
    fn as_char(self) -> char {
        match self {
            Separator::Dot => '.',
            Separator::Colon => ':',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    One,
    /// `**`: one or more segments; only ever last.
    Rest,
}

impl Segment {
    /// Lower ranks are more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::One => 1,
            Segment::Rest => 2,
        }
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is the empty string.
    #[error("pattern is empty")]
    Empty,
    /// `**` appears before the last segment.
    #[error("'**' may only be the last segment of '{0}'")]
    RestNotLast(String),
    /// A segment is empty (`a..b`) or mixes a wildcard with text (`a*`).
    #[error("invalid segment '{segment}' in '{pattern}': segments are non-empty and '*' or '**' stand alone")]
    BadSegment {
        /// The whole pattern.
        pattern: String,
        /// The offending segment.
        segment: String,
    },
}

/// A parsed pattern: literal segments, `*` and a trailing `**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    separator: Separator,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses `source`, whose segments are split on `separator`.
    pub fn parse(source: &str, separator: Separator) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        let parts: Vec<&str> = source.split(separator.as_char()).collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let segment = match part {
                "*" => Segment::One,
                "**" if index == last => Segment::Rest,
                "**" => return Err(PatternError::RestNotLast(source.to_owned())),
                _ if part.is_empty() || part.contains('*') => {
                    return Err(PatternError::BadSegment {
                        pattern: source.to_owned(),
                        segment: part.to_owned(),
                    })
                }
                _ => Segment::Literal(part.to_owned()),
            };
            segments.push(segment);
        }
        Ok(Pattern {
            source: source.to_owned(),
            separator,
            segments,
        })
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard, so it matches only its own text.
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal(_)))
    }

    /// True when `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.captures(name).is_some()
    }

    /// Matches `name` and returns what each wildcard matched, in order (`**` as one string).
    pub fn captures<'n>(&self, name: &'n str) -> Option<Vec<&'n str>> {
        let mut captures = Vec::new();
        let mut rest = name;
        let separator = self.separator.as_char();
        for (index, segment) in self.segments.iter().enumerate() {
            let is_last = index == self.segments.len() - 1;
            if let Segment::Rest = segment {
                // One or more non-empty segments.
                if rest.is_empty() || rest.split(separator).any(str::is_empty) {
                    return None;
                }
                captures.push(rest);
                return Some(captures);
            }
            let (head, tail) = match rest.split_once(separator) {
                Some((head, tail)) if !is_last => (head, tail),
                Some(_) => return None,
                None if is_last => (rest, ""),
                None => return None,
            };
            match segment {
                Segment::Literal(literal) if literal == head => {}
                Segment::One if !head.is_empty() => captures.push(head),
                _ => return None,
            }
            rest = tail;
        }
        Some(captures)
    }

    /// Orders patterns from most to least specific: segment by segment a literal beats `*` and `*`
    /// beats `**`; when one is a prefix of the other, the longer wins.
    pub fn specificity_cmp(&self, other: &Pattern) -> Ordering {
        for (mine, theirs) in self.segments.iter().zip(&other.segments) {
            match mine.rank().cmp(&theirs.rank()) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        other.segments.len().cmp(&self.segments.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(source: &str) -> Pattern {
        Pattern::parse(source, Separator::Dot).expect("valid pattern")
    }

    #[test]
    fn literal_matches_only_itself() {
        let pattern = dot("user.get");
        assert!(pattern.is_exact());
        assert!(pattern.matches("user.get"));
        assert!(!pattern.matches("user.get.x"));
        assert!(!pattern.matches("user"));
    }

    #[test]
    fn star_matches_one_non_empty_segment() {
        let pattern = dot("user.*");
        assert_eq!(pattern.captures("user.get"), Some(vec!["get"]));
        assert!(!pattern.matches("user."));
        assert!(!pattern.matches("user.a.b"));
        assert!(!pattern.matches("user"));
    }

    #[test]
    fn double_star_matches_one_or_more_segments() {
        let pattern = dot("gateway.**");
        assert_eq!(pattern.captures("gateway.a.b"), Some(vec!["a.b"]));
        assert!(pattern.matches("gateway.a"));
        assert!(!pattern.matches("gateway"));
        assert!(!pattern.matches("gateway..a"));
        assert!(dot("**").matches("ping"));
    }

    #[test]
    fn colon_separated_topics_capture() {
        let pattern = Pattern::parse("user:*", Separator::Colon).expect("valid");
        assert_eq!(pattern.captures("user:42"), Some(vec!["42"]));
        assert!(!pattern.matches("user.42"));
    }

    #[test]
    fn refuses_malformed_patterns() {
        assert_eq!(Pattern::parse("", Separator::Dot), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::parse("a.**.b", Separator::Dot),
            Err(PatternError::RestNotLast(_))
        ));
        assert!(Pattern::parse("a..b", Separator::Dot).is_err());
        assert!(Pattern::parse("a*", Separator::Dot).is_err());
    }

    #[test]
    fn specificity_orders_literal_star_rest_then_length() {
        let mut patterns = [dot("**"), dot("a.**"), dot("a.*"), dot("a.b"), dot("*.b")];
        patterns.sort_by(Pattern::specificity_cmp);
        let order: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
        assert_eq!(order, ["a.b", "a.*", "a.**", "*.b", "**"]);
        assert_eq!(dot("a.*.c").specificity_cmp(&dot("a.*")), Ordering::Less);
    }
}
