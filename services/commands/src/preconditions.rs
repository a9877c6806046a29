//! `If-Match` / `If-None-Match` against an aggregate's version, whose ETag is `"<version>"`.

use crate::CommandError;

/// The ETag of a resource at `version`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// One side of a condition: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTag {
    Any,
    Tags(Vec<String>),
}

impl EntityTag {
    /// Parses a header value such as `*`, `"3"`, `W/"3"` or `"3", "4"`. Weak tags compare by
    /// their value, as RFC 9110 allows for these conditions on a resource that has one
    /// representation.
    pub fn parse(header: &str) -> Option<EntityTag> {
        let header = header.trim();
        if header == "*" {
            return Some(EntityTag::Any);
        }
        let mut tags = Vec::new();
        for part in header.split(',') {
            let part = part.trim();
            let part = part.strip_prefix("W/").unwrap_or(part);
            if part.len() < 2 || !part.starts_with('"') || !part.ends_with('"') {
                return None;
            }
            tags.push(part.to_string());
        }
        if tags.is_empty() {
            None
        } else {
            Some(EntityTag::Tags(tags))
        }
    }

    fn matches(&self, exists: bool, version: u64) -> bool {
        match self {
            EntityTag::Any => exists,
            EntityTag::Tags(tags) => exists && tags.iter().any(|t| *t == etag(version)),
        }
    }
}

/// The conditions a write carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<EntityTag>,
    pub if_none_match: Option<EntityTag>,
}

impl Preconditions {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_conditional(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// Checks the conditions against the resource as loaded.
    pub fn check(&self, exists: bool, version: u64) -> Result<(), CommandError> {
        if let Some(condition) = &self.if_match
            && !condition.matches(exists, version)
        {
            return Err(CommandError::PreconditionFailed);
        }
        if let Some(condition) = &self.if_none_match
            && condition.matches(exists, version)
        {
            return Err(CommandError::PreconditionFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_star_needs_an_existing_resource() {
        let p = Preconditions {
            if_match: EntityTag::parse("*"),
            if_none_match: None,
        };
        assert!(p.check(true, 3).is_ok());
        assert!(p.check(false, 0).is_err());
    }

    #[test]
    fn if_none_match_star_allows_only_creation() {
        let p = Preconditions {
            if_match: None,
            if_none_match: EntityTag::parse("*"),
        };
        assert!(
            p.check(false, 2).is_ok(),
            "a deleted resource may be created again"
        );
        assert!(p.check(true, 2).is_err());
    }

    #[test]
    fn if_match_compares_the_version_tag() {
        let p = Preconditions {
            if_match: EntityTag::parse("W/\"1\", \"4\""),
            if_none_match: None,
        };
        assert!(p.check(true, 4).is_ok());
        assert!(p.check(true, 1).is_ok());
        assert!(p.check(true, 2).is_err());
    }

    #[test]
    fn malformed_tags_are_not_parsed() {
        assert_eq!(EntityTag::parse("4"), None);
        assert_eq!(EntityTag::parse(""), None);
    }
}
