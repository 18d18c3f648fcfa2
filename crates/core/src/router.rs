//! The routing table: which method handler answers a request, which middleware wraps it, and which event
//! handlers receive a client event. Handlers themselves live in the application; here they are ids.

use std::collections::HashMap;

use crate::net::keys::Keyed;
use crate::pattern::{Pattern, PatternError, Separator};

/// The application's id for one of its handler functions.
pub type HandlerId = u32;

/// What runs for one request: the middleware in registration order, then the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The method handler.
    pub handler: HandlerId,
    /// Middleware whose pattern matches the method, in registration order.
    pub middleware: Vec<HandlerId>,
    /// The handler was registered under the method's own name, not a wildcard pattern.
    pub exact: bool,
}

/// Methods, middleware and event handlers, by pattern.
#[derive(Debug, Default)]
pub struct Router {
    /// Hashed with FNV rather than SipHash: the names are the application's, and a client only looks
    /// them up, so it cannot fill the map with keys chosen to collide.
    exact_methods: HashMap<String, HandlerId, Keyed>,
    /// Wildcard methods, kept sorted from most to least specific so the first match wins.
    pattern_methods: Vec<(Pattern, HandlerId)>,
    middleware: Vec<(Pattern, HandlerId)>,
    events: Vec<(Pattern, HandlerId)>,
}

impl Router {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a method handler under `pattern` (`.`-separated); a later registration of the same
    /// pattern replaces the earlier one.
    pub fn add_method(&mut self, pattern: &str, handler: HandlerId) -> Result<(), PatternError> {
        let pattern = Pattern::parse(pattern, Separator::Dot)?;
        if pattern.is_exact() {
            self.exact_methods
                .insert(pattern.as_str().to_owned(), handler);
            return Ok(());
        }
        self.pattern_methods
            .retain(|(existing, _)| existing != &pattern);
        let at = self
            .pattern_methods
            .partition_point(|(existing, _)| existing.specificity_cmp(&pattern).is_le());
        self.pattern_methods.insert(at, (pattern, handler));
        Ok(())
    }

    /// Registers middleware for the methods matching `pattern`.
    pub fn add_middleware(
        &mut self,
        pattern: &str,
        handler: HandlerId,
    ) -> Result<(), PatternError> {
        self.middleware
            .push((Pattern::parse(pattern, Separator::Dot)?, handler));
        Ok(())
    }

    /// Registers an event handler for the topics matching `pattern` (`:`-separated).
    pub fn add_event_handler(
        &mut self,
        pattern: &str,
        handler: HandlerId,
    ) -> Result<(), PatternError> {
        self.events
            .push((Pattern::parse(pattern, Separator::Colon)?, handler));
        Ok(())
    }

    /// Removes an event handler; returns whether it was registered.
    pub fn remove_event_handler(&mut self, handler: HandlerId) -> bool {
        let before = self.events.len();
        self.events.retain(|(_, id)| *id != handler);
        self.events.len() != before
    }

    /// The route for `method`, or `None` when no method matches.
    pub fn route(&self, method: &str) -> Option<Route> {
        let (handler, exact) = match self.exact_methods.get(method) {
            Some(handler) => (*handler, true),
            None => {
                let (_, handler) = self
                    .pattern_methods
                    .iter()
                    .find(|(pattern, _)| pattern.matches(method))?;
                (*handler, false)
            }
        };
        let middleware = self
            .middleware
            .iter()
            .filter(|(pattern, _)| pattern.matches(method))
            .map(|(_, id)| *id)
            .collect();
        Some(Route {
            handler,
            middleware,
            exact,
        })
    }

    /// Every event handler whose pattern matches `topic`, in registration order.
    pub fn event_handlers(&self, topic: &str) -> Vec<HandlerId> {
        self.events
            .iter()
            .filter(|(pattern, _)| pattern.matches(topic))
            .map(|(_, id)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(methods: &[(&str, HandlerId)]) -> Router {
        let mut router = Router::new();
        for (pattern, id) in methods {
            router.add_method(pattern, *id).expect("valid pattern");
        }
        router
    }

    #[test]
    fn the_most_specific_method_wins_whatever_the_order() {
        let router = router(&[("**", 1), ("user.**", 2), ("user.*", 3), ("user.get", 4)]);
        assert_eq!(router.route("user.get").map(|r| r.handler), Some(4));
        assert_eq!(router.route("user.set").map(|r| r.handler), Some(3));
        assert_eq!(router.route("user.a.b").map(|r| r.handler), Some(2));
        assert_eq!(router.route("other").map(|r| r.handler), Some(1));
    }

    #[test]
    fn a_route_says_whether_the_method_was_registered_under_its_own_name() {
        let router = router(&[("user.get", 1), ("user.*", 2)]);
        assert_eq!(router.route("user.get").map(|r| r.exact), Some(true));
        assert_eq!(router.route("user.set").map(|r| r.exact), Some(false));
    }

    #[test]
    fn unknown_methods_have_no_route() {
        let router = router(&[("api.users.list", 1)]);
        assert_eq!(router.route("api.users"), None);
    }

    #[test]
    fn middleware_runs_in_registration_order_and_only_where_it_matches() {
        let mut router = router(&[("api.users.list", 10), ("ping", 11)]);
        router.add_middleware("**", 1).expect("valid");
        router.add_middleware("api.**", 2).expect("valid");
        router.add_middleware("api.users.list", 3).expect("valid");
        assert_eq!(
            router.route("api.users.list").map(|r| r.middleware),
            Some(vec![1, 2, 3])
        );
        assert_eq!(router.route("ping").map(|r| r.middleware), Some(vec![1]));
    }

    #[test]
    fn every_matching_event_handler_runs() {
        let mut router = Router::new();
        router.add_event_handler("chat:message", 1).expect("valid");
        router.add_event_handler("chat:*", 2).expect("valid");
        router.add_event_handler("other", 3).expect("valid");
        assert_eq!(router.event_handlers("chat:message"), vec![1, 2]);
        assert!(router.remove_event_handler(2));
        assert_eq!(router.event_handlers("chat:message"), vec![1]);
    }
}
