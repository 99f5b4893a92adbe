//! coachd's activity types: each belongs to a family (what "2 runs a week" counts) and a
//! category (what "15 minutes of cardio" counts). Sources map their own sport names onto
//! these; the provider manifests and file parsers do that mapping.

use crate::model::Category;

/// (type, family, category). `workout` is the generic type of a source that cannot tell
/// the sport (a heart-rate strap): it merges with any other type.
const TYPES: &[(&str, &str, Category)] = &[
    ("run", "run", Category::Cardio),
    ("trail_run", "run", Category::Cardio),
    ("treadmill_run", "run", Category::Cardio),
    ("virtual_run", "run", Category::Cardio),
    ("ride", "ride", Category::Cardio),
    ("indoor_ride", "ride", Category::Cardio),
    ("virtual_ride", "ride", Category::Cardio),
    ("mountain_bike", "ride", Category::Cardio),
    ("walk", "walk", Category::Cardio),
    ("hike", "walk", Category::Cardio),
    ("swim", "swim", Category::Cardio),
    ("row", "row", Category::Cardio),
    ("elliptical", "elliptical", Category::Cardio),
    ("stair_stepper", "stairs", Category::Cardio),
    ("hiit", "hiit", Category::Cardio),
    ("crossfit", "hiit", Category::Cardio),
    ("cardio", "cardio", Category::Cardio),
    ("strength", "strength", Category::Strength),
    ("weight_training", "strength", Category::Strength),
    ("yoga", "yoga", Category::Mobility),
    ("pilates", "mobility", Category::Mobility),
    ("mobility", "mobility", Category::Mobility),
    ("stretching", "mobility", Category::Mobility),
    ("recovery", "mobility", Category::Mobility),
    // Not mobility: a meditation never counts as "20 minutes of mobility".
    ("meditation", "mindfulness", Category::Other),
    ("mindfulness", "mindfulness", Category::Other),
    ("breathwork", "mindfulness", Category::Other),
    ("workout", "workout", Category::Other),
    ("other", "other", Category::Other),
];

pub const GENERIC: &str = "workout";

/// Every known type name, for error messages.
pub fn names() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|t| t.0)
}

pub fn is_known(ty: &str) -> bool {
    TYPES.iter().any(|t| t.0 == ty)
}

/// The family of a type; an unknown type is its own family.
pub fn family(ty: &str) -> &str {
    TYPES.iter().find(|t| t.0 == ty).map_or(ty, |t| t.1)
}

/// The category a type counts as; unknown types are `other`.
pub fn category(ty: &str) -> Category {
    TYPES.iter().find(|t| t.0 == ty).map_or(Category::Other, |t| t.2)
}

/// A type that says nothing about the sport.
pub fn is_generic(ty: &str) -> bool {
    matches!(family(ty), "workout" | "other")
}

/// Whether two records of these types can be the same workout.
pub fn compatible(a: &str, b: &str) -> bool {
    is_generic(a) || is_generic(b) || family(a) == family(b) || category(a) == category(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_compatibility() {
        assert_eq!(family("trail_run"), "run");
        assert_eq!(category("yoga"), Category::Mobility);
        assert!(compatible("workout", "ride"));
        assert!(compatible("run", "treadmill_run"));
        assert!(!compatible("run", "strength"));
        assert!(!compatible("yoga", "run"));
        assert_eq!(category("unknown_sport"), Category::Other);
        for ty in ["meditation", "mindfulness", "breathwork"] {
            assert_eq!((family(ty), category(ty)), ("mindfulness", Category::Other), "{ty}");
        }
        assert_eq!(family("yoga"), "yoga", "yoga stays its own family");
        assert!(!compatible("meditation", "run"));
    }
}
