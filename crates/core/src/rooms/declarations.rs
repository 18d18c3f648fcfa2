//! Declared rooms: which topics a client may subscribe to, and who decides.

use std::collections::HashSet;

use crate::pattern::{Pattern, PatternError, Separator};
use crate::router::HandlerId;

/// Why a room declaration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The pattern does not parse.
    #[error("invalid room pattern: {0}")]
    Pattern(#[from] PatternError),
    /// A public room names a wildcard pattern.
    #[error(
        "public room '{0}' must be an exact name: '*' and '**' are only allowed in protected rooms, which have a validator"
    )]
    PublicPattern(String),
}

/// Who decides a subscription to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A public room: anyone may join.
    Public,
    /// A protected room: the application's validator decides, given what the pattern's wildcards matched.
    Protected {
        /// The validator's handler id.
        validator: HandlerId,
        /// What each wildcard matched, in order (`**` as one string).
        captures: Vec<String>,
    },
    /// No room is declared for the topic: the subscription is refused.
    Undeclared,
}

/// Public rooms by exact name, and protected rooms by pattern.
#[derive(Debug, Default)]
pub(crate) struct Declarations {
    public: HashSet<String>,
    /// Kept sorted from most to least specific, so the first match decides.
    protected: Vec<(Pattern, HandlerId)>,
}

impl Declarations {
    /// Declares a public room; `name` must be exact. Replaces a protected declaration of the same name.
    pub(crate) fn declare_public(&mut self, name: &str) -> Result<(), RoomError> {
        let pattern = Pattern::parse(name, Separator::Colon)?;
        if !pattern.is_exact() {
            return Err(RoomError::PublicPattern(name.to_owned()));
        }
        self.protected.retain(|(existing, _)| existing != &pattern);
        self.public.insert(name.to_owned());
        Ok(())
    }

    /// Declares a protected room under `pattern`, decided by `validator`. Replaces an earlier declaration
    /// of the same pattern, public or protected.
    pub(crate) fn declare_protected(
        &mut self,
        pattern: &str,
        validator: HandlerId,
    ) -> Result<(), RoomError> {
        let pattern = Pattern::parse(pattern, Separator::Colon)?;
        self.public.remove(pattern.as_str());
        self.protected.retain(|(existing, _)| existing != &pattern);
        let at = self
            .protected
            .partition_point(|(existing, _)| existing.specificity_cmp(&pattern).is_le());
        self.protected.insert(at, (pattern, validator));
        Ok(())
    }

    /// Who decides a subscription to `topic`: a public name first (an exact name is the most specific),
    /// then the most specific protected pattern that matches.
    pub(crate) fn decide(&self, topic: &str) -> Decision {
        if self.public.contains(topic) {
            return Decision::Public;
        }
        self.protected
            .iter()
            .find_map(|(pattern, validator)| {
                pattern.captures(topic).map(|captures| Decision::Protected {
                    validator: *validator,
                    captures: captures.into_iter().map(str::to_owned).collect(),
                })
            })
            .unwrap_or(Decision::Undeclared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(validator: HandlerId, captures: &[&str]) -> Decision {
        Decision::Protected {
            validator,
            captures: captures.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn public_rooms_are_exact_names() {
        let mut rooms = Declarations::default();
        rooms.declare_public("lobby").expect("exact name");
        assert_eq!(rooms.decide("lobby"), Decision::Public);
        assert_eq!(rooms.decide("lobby:x"), Decision::Undeclared);
        assert!(matches!(
            rooms.declare_public("chat:*"),
            Err(RoomError::PublicPattern(_))
        ));
        assert!(matches!(
            rooms.declare_public(""),
            Err(RoomError::Pattern(PatternError::Empty))
        ));
    }

    #[test]
    fn protected_patterns_capture_their_wildcards() {
        let mut rooms = Declarations::default();
        rooms.declare_protected("user:*", 1).expect("valid");
        rooms.declare_protected("files:**", 2).expect("valid");
        assert_eq!(rooms.decide("user:42"), protected(1, &["42"]));
        assert_eq!(rooms.decide("files:a:b"), protected(2, &["a:b"]));
        assert_eq!(rooms.decide("user"), Decision::Undeclared);
        assert_eq!(rooms.decide("user:42:x"), Decision::Undeclared);
    }

    #[test]
    fn the_most_specific_pattern_decides_whatever_the_order() {
        let mut rooms = Declarations::default();
        for (pattern, id) in [
            ("**", 1),
            ("chat:**", 2),
            ("chat:*", 3),
            ("chat:admin", 4),
            ("chat:*:log", 5),
        ] {
            rooms.declare_protected(pattern, id).expect("valid");
        }
        assert_eq!(rooms.decide("chat:admin"), protected(4, &[]));
        assert_eq!(rooms.decide("chat:general"), protected(3, &["general"]));
        assert_eq!(rooms.decide("chat:general:log"), protected(5, &["general"]));
        assert_eq!(rooms.decide("chat:a:b"), protected(2, &["a:b"]));
        assert_eq!(rooms.decide("other"), protected(1, &["other"]));
    }

    #[test]
    fn a_later_declaration_replaces_the_same_name() {
        let mut rooms = Declarations::default();
        rooms.declare_protected("news", 1).expect("valid");
        rooms.declare_public("news").expect("valid");
        assert_eq!(rooms.decide("news"), Decision::Public);
        rooms.declare_protected("news", 2).expect("valid");
        assert_eq!(rooms.decide("news"), protected(2, &[]));
    }
}
