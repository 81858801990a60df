//! Things chosen by name (losses, architectures, torchvision's networks, search backends): each
//! kind is an enum whose variants strum lists (`#[derive(EnumIter)]`) and whose names come from
//! one exhaustive `match` (`Registry::name`). Parsing, listing, serde and the "unknown …; valid:
//! …" message are derived here from those two, so a new variant is parsed, listed and named in
//! errors as soon as the compiler accepts its `name` arm.
use strum::IntoEnumIterator;

use crate::error::{Error, Result};

pub trait Registry: IntoEnumIterator + Copy + PartialEq + 'static {
    /// The option that chooses an item (`model`, `loss`, `backend`): errors name it.
    const OPTION: &'static str;

    /// The name scripts, manifests and files use.
    fn name(self) -> &'static str;

    /// Every item, in declaration order.
    fn all() -> Vec<Self> {
        Self::iter().collect()
    }

    /// Every name, in declaration order.
    fn names() -> Vec<&'static str> {
        Self::iter().map(Self::name).collect()
    }

    /// The item called `name`, or an error naming the option and listing every valid name.
    fn parse(name: &str) -> Result<Self> {
        Self::iter().find(|item| item.name() == name).ok_or_else(|| {
            Error::invalid_option(Self::OPTION, format!("unknown {} '{name}'; valid: {}", Self::OPTION, Self::names().join(", ")))
        })
    }
}

/// `FromStr`, `Serialize` and `Deserialize` of a [`Registry`] through its names, so
/// files and scripts spell an item one way.
#[macro_export]
macro_rules! by_name {
    ($t:ty) => {
        impl std::str::FromStr for $t {
            type Err = $crate::error::Error;
            fn from_str(name: &str) -> $crate::error::Result<Self> {
                <$t as $crate::registry::Registry>::parse(name)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str($crate::registry::Registry::name(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                <$t as $crate::registry::Registry>::parse(&name).map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The registry test every kind runs: each item parses from its name, is listed once, and
    /// an unknown name is refused with every valid one in the message.
    pub(crate) fn check<T: Registry + std::fmt::Debug>() {
        let names = T::names();
        assert!(!names.is_empty());
        for item in T::iter() {
            assert_eq!(T::parse(item.name()).unwrap(), item);
            assert_eq!(names.iter().filter(|n| **n == item.name()).count(), 1, "{} listed once", item.name());
        }
        let error = T::parse("no-such-item").unwrap_err().to_string();
        assert!(error.contains(&format!("option '{}'", T::OPTION)), "{error}");
        for name in &names {
            assert!(error.contains(name), "{error} lists {name}");
        }
    }
}
