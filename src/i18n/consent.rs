//! The consent text a patient reads and accepts, in their language, recorded verbatim (with its version and hash)
//! in the consent record. Both builds.

use super::catalogue::{msgs, record_kind_labels, with_app};

/// Version of the consent text; bump it whenever any consent string of the catalogue changes (recorded with
/// every consent as `consents.text_version`).
pub const CONSENT_TEXT_VERSION: &str = "2026-12-02.1";

/// The consent text shown (and recorded verbatim) for a session.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentText {
    pub title: String,
    pub intro: String,
    pub what: String,
    pub items: Vec<String>,
    pub how_long_title: String,
    pub how_long: String,
    pub withdraw_title: String,
    pub withdraw: String,
}

impl ConsentText {
    /// Builds the consent text of a session in its language.
    pub fn new(lang: &str, app: &str, usage: &str, requested: &[String]) -> Self {
        let m = msgs(lang);
        let items = if requested.is_empty() {
            vec![m.consent_claims.to_string(), m.consent_coverage.to_string(), m.consent_clinical.to_string()]
        } else {
            // Plain words, each kind once, in the order the connections page lists them later (the FHIR types
            // themselves go into the recorded `scope`).
            vec![m.consent_selected.replace("{list}", &record_kind_labels(lang, requested).join(", "))]
        };
        ConsentText {
            title: with_app(m.consent_title, app),
            intro: with_app(m.consent_intro, app),
            what: with_app(m.consent_what, app),
            items,
            how_long_title: m.consent_how_long.to_string(),
            how_long: if usage == "MULTIPLE" { m.consent_multiple } else { m.consent_one_time }.to_string(),
            withdraw_title: m.consent_withdraw_title.to_string(),
            withdraw: with_app(m.consent_withdraw, app),
        }
    }

    /// The same text for repair mode: its title and first paragraph say it renews the connection the patient
    /// made before (what is shared, for how long and how to withdraw stay as they were).
    pub fn renewal(self, lang: &str, app: &str) -> Self {
        let m = msgs(lang);
        ConsentText { title: with_app(m.consent_renew_title, app), intro: with_app(m.consent_renew_intro, app), ..self }
    }

    /// The exact text as recorded in the consent record (one paragraph per line).
    pub fn plain(&self) -> String {
        let mut out = vec![self.title.clone(), self.intro.clone(), self.what.clone()];
        out.extend(self.items.iter().map(|i| format!("- {i}")));
        out.extend([self.how_long_title.clone(), self.how_long.clone(), self.withdraw_title.clone(), self.withdraw.clone()]);
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::ConsentText;

    #[test]
    fn requested_kinds_are_listed_once_in_catalogue_order() {
        let requested: Vec<String> =
            ["ExplanationOfBenefit", "Claim", "Coverage", "Basic"].map(String::from).to_vec();
        let t = ConsentText::new("en", "Acme", "ONE_TIME", &requested);
        assert_eq!(t.items, ["Only these kinds of records: Insurance coverage, Claims, Other records"]);
        let t = ConsentText::new("ko", "Acme", "ONE_TIME", &requested);
        assert_eq!(t.items, ["다음 종류의 기록만: 보험 보장 내용, 청구 내역, 기타 기록"]);
        assert_eq!(t.title, "Acme에서 건강보험 연결을 요청합니다");
        let r = ConsentText::new("es", "Acme", "MULTIPLE", &[]).renewal("es", "Acme");
        assert_eq!(r.title, "Renueve la conexión de Acme con su plan de salud");
        assert_eq!(r.items, ConsentText::new("es", "Acme", "MULTIPLE", &[]).items);
    }
}
