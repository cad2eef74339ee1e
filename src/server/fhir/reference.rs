//! FHIR R4 `Reference.reference` strings (R4 §2.3.0 "Literal references"): the one parser of them, used by
//! the store's index, the sync's reference resolution, the FHIR API's `_include`, the demo and the payer's
//! `fhirUser` claim.
//!
//! Forms: relative `Type/id`, absolute `{base}/Type/id`, versioned `…/Type/id/_history/vid`, contained
//! `#id`, logical `urn:uuid:…`/`urn:oid:…`, conditional `Type?params`. [`target`] reads the `Type/id` a path
//! ends with; each caller's function below says which forms it accepts and how strictly it checks them.

use super::search::RESOURCE_TYPES;

/// The resource a literal reference's path ends with: its last two segments, or the two before
/// `_history/{vid}`. Nothing is checked: see the functions below for the forms each use accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// What precedes `{Type}/`, with its trailing `/` (a base URL or path, `/` for `/Type/id`; empty for a
    /// relative reference).
    pub base: &'a str,
    /// The resource type segment.
    pub resource_type: &'a str,
    /// The id segment.
    pub id: &'a str,
    /// The version after `_history/`, for a versioned reference.
    pub version: Option<&'a str>,
}

/// Splits `path` at `/` and reads its [`Target`]: `[base/]Type/id` or `[base/]Type/id/_history/vid`.
/// `None` when it has a single segment.
pub fn target(path: &str) -> Option<Target<'_>> {
    let segments: Vec<&str> = path.split('/').collect();
    let n = segments.len();
    let (ti, version) = if n >= 4 && segments[n - 2] == "_history" {
        (n - 4, Some(segments[n - 1]))
    } else if n >= 2 {
        (n - 2, None)
    } else {
        return None;
    };
    // Segments are slices of `path`: the base is everything before the type segment.
    let start = segments[ti].as_ptr() as usize - path.as_ptr() as usize;
    Some(Target { base: &path[..start], resource_type: segments[ti], id: segments[ti + 1], version })
}

/// Whether `id` is a FHIR R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `t` is spelled like a FHIR resource type name: an ASCII capital, then ASCII letters, at most 64.
pub fn is_type_name(t: &str) -> bool {
    t.len() <= 64 && t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && t.chars().all(|c| c.is_ascii_alphabetic())
}

/// `(type, id)` of a literal reference to a type the FHIR API serves ([`RESOURCE_TYPES`]) with a valid FHIR id:
/// relative, absolute (its last two segments) or versioned. `None` for contained (`#x`), logical (`urn:…`),
/// conditional (`Type?…`) or malformed references. The string is taken as is: a query, a fragment or a
/// trailing `/` makes it malformed. Used by the FHIR API's `_include` and the demo.
pub fn served_target(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with('#') {
        return None;
    }
    let t = target(reference)?;
    (RESOURCE_TYPES.contains(&t.resource_type) && is_valid_id(t.id)).then_some((t.resource_type, t.id))
}

/// `Patient/{id}` from a reference (relative, absolute or versioned) to a Patient; `None` for other types.
/// A query or fragment and trailing `/` are ignored; the id is not checked beyond being non-empty. Used by the
/// store's index (the `patient_ref` column).
pub fn patient_ref_of(reference: &str) -> Option<String> {
    let path = reference.split(['?', '#']).next()?.trim_end_matches('/');
    let t = target(path)?;
    (t.resource_type == "Patient" && !t.id.is_empty()).then(|| format!("Patient/{}", t.id))
}

/// The Patient id of an OpenID Connect `fhirUser` claim (SMART App Launch 2.x §"fhirUser"): a relative or
/// absolute `Patient/{id}` URL, trailing `/` ignored. A versioned URL or another type is `None`; the id is not
/// checked beyond being non-empty.
pub fn fhir_user_patient(fhir_user: &str) -> Option<&str> {
    let t = target(fhir_user.trim_end_matches('/'))?;
    (t.resource_type == "Patient" && t.version.is_none() && !t.id.is_empty()).then_some(t.id)
}

/// What a reference string is, from its first characters (R4 §2.3.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#id`: a resource contained in the referencing one.
    Contained,
    /// `urn:uuid:…`, `urn:oid:…`: a logical id, resolvable only inside a Bundle.
    Logical,
    /// `Type?params`: a conditional reference (search criteria).
    Conditional,
    /// Anything else: a relative or absolute URL of a resource.
    Literal,
}

/// The [`Kind`] of a reference string.
pub fn kind(reference: &str) -> Kind {
    if reference.starts_with('#') {
        Kind::Contained
    } else if reference.starts_with("urn:") {
        Kind::Logical
    } else if reference.contains('?') {
        Kind::Conditional
    } else {
        Kind::Literal
    }
}

/// `Type/id` of a reference path relative to a FHIR base: exactly `Type/id` or `Type/id/_history/vid`
/// (a fragment ignored), with a FHIR-spelled type name and a valid id. `None` when anything precedes the type.
/// Used by the sync on [`Kind::Literal`] references, after it took the payer's base off an absolute one.
pub fn relative_target(path: &str) -> Option<String> {
    let t = target(path.split('#').next()?)?;
    (t.base.is_empty() && is_type_name(t.resource_type) && is_valid_id(t.id)).then(|| format!("{}/{}", t.resource_type, t.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_relative_absolute_and_versioned_paths() {
        assert_eq!(target("Patient/1"), Some(Target { base: "", resource_type: "Patient", id: "1", version: None }));
        assert_eq!(
            target("https://x/fhir/Organization/o1/_history/2"),
            Some(Target { base: "https://x/fhir/", resource_type: "Organization", id: "o1", version: Some("2") })
        );
        assert_eq!(target("/Patient/1").map(|t| t.base), Some("/"));
        assert_eq!(target("Patient"), None);
    }

    #[test]
    fn served_targets() {
        assert_eq!(served_target("Patient/-123"), Some(("Patient", "-123")));
        assert_eq!(served_target("https://x/fhir/Organization/o1/_history/2"), Some(("Organization", "o1")));
        assert_eq!(served_target("#c1"), None);
        assert_eq!(served_target("Foo/1"), None);
        for r in ["urn:uuid:1", "Practitioner?identifier=x", "Practitioner/7?x", "prac-4", "", "/", "Practitioner/7/"] {
            assert_eq!(served_target(r), None, "{r}");
        }
    }

    #[test]
    fn patient_refs() {
        assert_eq!(patient_ref_of("Patient/123").as_deref(), Some("Patient/123"));
        assert_eq!(patient_ref_of("https://x.example/fhir/Patient/-1").as_deref(), Some("Patient/-1"));
        assert_eq!(patient_ref_of("Organization/1"), None);
        assert_eq!(patient_ref_of("Patient/1/_history/3?x#y").as_deref(), Some("Patient/1"));
        assert_eq!(patient_ref_of("#p"), None);
    }

    #[test]
    fn fhir_user_patients() {
        assert_eq!(fhir_user_patient("https://payer.example/fhir/Patient/abc-1"), Some("abc-1"));
        assert_eq!(fhir_user_patient("Patient/abc-1/"), Some("abc-1"));
        assert_eq!(fhir_user_patient("Practitioner/1"), None);
        assert_eq!(fhir_user_patient("Patient/1/_history/2"), None);
        assert_eq!(fhir_user_patient("Patient/"), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind("#c"), Kind::Contained);
        assert_eq!(kind("urn:uuid:1"), Kind::Logical);
        assert_eq!(kind("Coverage?identifier=1"), Kind::Conditional);
        assert_eq!(kind("https://p/fhir/Coverage/1"), Kind::Literal);
    }

    #[test]
    fn relative_targets() {
        assert_eq!(relative_target("Coverage/c1").as_deref(), Some("Coverage/c1"));
        assert_eq!(relative_target("Coverage/c1/_history/4#x").as_deref(), Some("Coverage/c1"));
        for r in ["/Coverage/c1", "#c", "fhir/Coverage/c1", "coverage/c1", "Coverage/c 1", "Coverage/c1/", "Coverage"] {
            assert_eq!(relative_target(r), None, "{r}");
        }
    }
}
