//! The message catalogue of every patient-facing string of the Link flow and the connections page, in English
//! and Spanish.
//!
//! Compiled in both builds. `{app}` in a string is replaced by the app's name, `{plan}` by the plan's name,
//! `{time}` by a date and time from [`human_time`].
//! The consent strings are recorded verbatim in `consents.text`: change them only together with
//! [`CONSENT_TEXT_VERSION`](super::CONSENT_TEXT_VERSION).

/// Every string of the flow in one language.
#[derive(Debug)]
pub struct Msgs {
    pub lang: &'static str,
    pub test_mode: &'static str,
    pub close: &'static str,
    pub dialog_label: &'static str,
    // Consent
    pub consent_title: &'static str,
    pub consent_intro: &'static str,
    pub consent_what: &'static str,
    pub consent_claims: &'static str,
    pub consent_coverage: &'static str,
    pub consent_clinical: &'static str,
    pub consent_selected: &'static str,
    pub consent_how_long: &'static str,
    pub consent_one_time: &'static str,
    pub consent_multiple: &'static str,
    pub consent_withdraw_title: &'static str,
    pub consent_withdraw: &'static str,
    pub signature_label: &'static str,
    pub signature_hint: &'static str,
    pub signature_missing: &'static str,
    pub agree: &'static str,
    pub decline: &'static str,
    // Explainer
    pub explainer_title: &'static str,
    pub explainer_step1: &'static str,
    pub explainer_step2: &'static str,
    pub explainer_step3: &'static str,
    pub explainer_safe_title: &'static str,
    pub explainer_safe: &'static str,
    pub continue_: &'static str,
    // Search
    pub search_title: &'static str,
    pub search_label: &'static str,
    pub search_hint: &'static str,
    pub search_button: &'static str,
    pub results_label: &'static str,
    pub no_results: &'static str,
    pub connect: &'static str,
    pub connect_to: &'static str,
    /// Health note of a plan that works; `{minutes}` when the typical time is known.
    pub health_usual_minutes: &'static str,
    /// The same for about one minute.
    pub health_usual_minute: &'static str,
    /// Health note of a plan some patients could not connect to lately.
    pub health_unsteady: &'static str,
    /// Health note of a plan whose recent connections fail.
    pub health_failing: &'static str,
    /// "Can't find your plan?" (the disclosure under the results).
    pub missing_summary: &'static str,
    pub missing_intro: &'static str,
    pub missing_label: &'static str,
    pub missing_send: &'static str,
    // Pre-check (before the hand-off)
    pub precheck_title: &'static str,
    pub precheck_account: &'static str,
    pub precheck_idp: &'static str,
    pub precheck_types: &'static str,
    pub precheck_no_account: &'static str,
    pub precheck_create: &'static str,
    pub precheck_new_tab: &'static str,
    pub remind_later: &'static str,
    // Connect (endpoint given)
    pub connect_title: &'static str,
    pub connect_intro: &'static str,
    // Payer
    pub payer_title: &'static str,
    pub payer_waiting: &'static str,
    pub payer_blocked: &'static str,
    pub payer_closed: &'static str,
    pub continue_to_plan: &'static str,
    pub choose_another: &'static str,
    pub try_again: &'static str,
    // Syncing
    pub syncing_title: &'static str,
    pub syncing_intro: &'static str,
    pub syncing_progress: &'static str,
    pub syncing_none_yet: &'static str,
    /// Without JavaScript the counts do not update by themselves: a link that reloads the screen.
    pub syncing_check_again: &'static str,
    // Success
    pub success_title: &'static str,
    pub success_intro: &'static str,
    pub success_closing: &'static str,
    /// The hosted flow's success screen once the app has the result (the patient came back to this page).
    pub success_returned: &'static str,
    /// `multiplePlans`: the success screen's offer of another plan, its button, and the button that ends.
    pub success_more: &'static str,
    pub success_another: &'static str,
    pub success_done: &'static str,
    /// `multiplePlans`, after more than one plan: how many (`{n}`) are connected in this sitting.
    pub success_count: &'static str,
    // Error
    pub error_title: &'static str,
    pub exit: &'static str,
    pub error_code_label: &'static str,
    // Exited / expired
    pub exited_title: &'static str,
    pub exited_intro: &'static str,
    pub expired_title: &'static str,
    pub expired_intro: &'static str,
    /// A Link address whose parameters cannot be read (malformed or repeated): the patient starts again.
    pub invalid_link_title: &'static str,
    /// The button that takes a timed-out hosted flow back to the app (`{app}`).
    pub return_to_app: &'static str,
    // Connections page (`/link/connections`)
    pub conn_title: &'static str,
    pub conn_lede: &'static str,
    pub conn_none: &'static str,
    pub conn_list_label: &'static str,
    pub conn_remove: &'static str,
    /// The confirmation step before a removal (`{plan}`, `{app}`).
    pub conn_confirm_question: &'static str,
    pub conn_confirm_detail: &'static str,
    pub conn_confirm_yes: &'static str,
    pub conn_confirm_keep: &'static str,
    /// A removal posted without its confirmation (an old page): nothing happened.
    pub conn_confirm_first: &'static str,
    pub conn_removed: &'static str,
    pub conn_removed_generic: &'static str,
    pub conn_not_removed: &'static str,
    pub conn_expired: &'static str,
    pub conn_go_back: &'static str,
    pub conn_internal: &'static str,
    pub conn_unreachable: &'static str,
    pub conn_needs_reconnect: &'static str,
    pub conn_shared: &'static str,
    pub conn_linked: &'static str,
    pub conn_access: &'static str,
    pub conn_access_ended: &'static str,
    pub conn_access_one_time: &'static str,
    pub conn_access_until: &'static str,
    pub conn_access_ongoing: &'static str,
    pub conn_health_plan: &'static str,
    // Popup
    pub popup_done_title: &'static str,
    pub popup_done_intro: &'static str,
    pub popup_error_title: &'static str,
    pub popup_error_intro: &'static str,
    // A request that does not come from the browser the session is bound to
    pub other_browser_title: &'static str,
    pub other_browser_intro: &'static str,
    // Too many sessions started from one network
    pub rate_limited_title: &'static str,
    pub rate_limited_intro: &'static str,
}

/// English.
pub static EN: Msgs = Msgs {
    lang: "en",
    test_mode: "Test mode",
    close: "Close",
    dialog_label: "Connect your health plan",
    consent_title: "{app} wants to connect to your health plan",
    consent_intro: "{app} uses this service to get a copy of your health records from your health plan, with your permission.",
    consent_what: "What {app} will get",
    consent_claims: "Claims: visits, prescriptions and what was paid",
    consent_coverage: "Plan and coverage details",
    consent_clinical: "Medical records your plan holds, such as conditions, allergies, medications and lab results",
    consent_selected: "Only these kinds of records: {list}",
    consent_how_long: "For how long",
    consent_one_time: "Once. Your records are deleted from this service 24 hours after you connect.",
    consent_multiple: "Ongoing. Your records are refreshed for as long as your health plan allows, until you withdraw.",
    consent_withdraw_title: "Withdrawing",
    consent_withdraw: "You can withdraw at any time: ask {app} to disconnect your plan, or remove the app from your health plan's account settings. Nothing is shared before you sign in with your plan.",
    signature_label: "Type your full name to sign",
    signature_hint: "Your typed name is your electronic signature for this consent.",
    signature_missing: "Type your full name to sign before you continue.",
    agree: "I agree, continue",
    decline: "No thanks",
    explainer_title: "How it works",
    explainer_step1: "Find your health plan.",
    explainer_step2: "Sign in on your health plan's own website, in a new window. It may name the service that connects you instead of {app}.",
    explainer_step3: "Your records are copied to {app}.",
    explainer_safe_title: "Why it is safe",
    explainer_safe: "Your password goes only to your health plan, never to {app} or to us. The connection uses the standard the US government requires health plans to offer (SMART on FHIR).",
    continue_: "Continue",
    search_title: "Find your health plan",
    search_label: "Health plan name",
    search_hint: "For example: the name on your member card.",
    search_button: "Search",
    results_label: "Health plans",
    no_results: "No health plan matches that name. Check the spelling or try another name.",
    connect: "Connect",
    connect_to: "Connect to {plan}",
    health_usual_minutes: "Usually takes about {minutes} minutes",
    health_usual_minute: "Usually takes about a minute",
    health_unsteady: "Some people could not connect lately. You may need to try again.",
    health_failing: "This plan is having problems right now. You can still try, or come back later.",
    missing_summary: "Can't find your plan?",
    missing_intro: "Tell us its name and we will ask for it to be added. This closes the connection for now; you can try again later.",
    missing_label: "Your health plan's name",
    missing_send: "Send and close",
    precheck_title: "Before you continue",
    precheck_account: "You'll need your online account at {portal} to connect {plan}: its username and password.",
    precheck_idp: "{plan} signs you in with {idp}.",
    precheck_types: "It serves: {types}.",
    precheck_no_account: "No account yet?",
    precheck_create: "Create one on the plan's site",
    precheck_new_tab: "(opens in a new tab)",
    remind_later: "Remind me later",
    connect_title: "Connect to your health plan",
    connect_intro: "You will sign in on your health plan's website in a new window.",
    payer_title: "Sign in with your health plan",
    payer_waiting: "Finish signing in using the window that opened. This page updates by itself when you are done.",
    payer_blocked: "Your browser blocked the sign-in window.",
    payer_closed: "The sign-in window was closed before you finished.",
    continue_to_plan: "Continue to your health plan",
    choose_another: "Choose another plan",
    try_again: "Try again",
    syncing_title: "Getting your records",
    syncing_intro: "Your health plan said yes. Your records are being copied; this can take a minute.",
    syncing_progress: "Records received so far",
    syncing_none_yet: "Starting…",
    syncing_check_again: "Check progress",
    success_title: "You're connected",
    success_intro: "Your health plan is connected to {app}.",
    success_closing: "Returning you to {app}…",
    success_returned: "You can close this window and go back to {app}.",
    success_more: "Do you have another health plan, such as a second or a previous one? You can connect it too.",
    success_another: "Connect another plan",
    success_done: "Done",
    success_count: "{n} plans connected",
    error_title: "Something went wrong",
    exit: "Exit",
    error_code_label: "Error code",
    exited_title: "You can close this window",
    exited_intro: "Nothing was shared.",
    expired_title: "This link has expired",
    expired_intro: "Start again from the app you came from.",
    invalid_link_title: "This link is not valid",
    return_to_app: "Return to {app}",
    conn_title: "Your connected health plans",
    conn_lede: "You shared data from these health plans with {app}. Removing one stops the sharing and deletes the copy we hold, right away.",
    conn_none: "You have no connected health plans.",
    conn_list_label: "Connected health plans",
    conn_remove: "Remove {plan}",
    conn_confirm_question: "Remove {plan}?",
    conn_confirm_detail: "{app} will stop receiving your records from {plan}, and the copy we hold will be deleted right away. You can't undo this; to share again, you would connect the plan again from {app}.",
    conn_confirm_yes: "Yes, remove {plan}",
    conn_confirm_keep: "Keep it",
    conn_confirm_first: "Nothing was removed. Press Remove again and confirm.",
    conn_removed: "{plan} was removed. Its data has been deleted.",
    conn_removed_generic: "The connection was removed. Its data has been deleted.",
    conn_not_removed: "That connection could not be removed. It may already have been removed.",
    conn_expired: "This page's link has expired or is not valid.",
    conn_go_back: "Go back to the app you came from and open your connected plans again.",
    conn_internal: "Something went wrong on our side. Please try again in a moment.",
    conn_unreachable: "We could not reach the server. Check your connection and try again.",
    conn_needs_reconnect: "Needs reconnecting",
    conn_shared: "Shared",
    conn_linked: "Linked",
    conn_access: "Access",
    conn_access_ended: "Your plan ended ongoing access. The copy is kept until {time} unless you remove it.",
    conn_access_one_time: "One-time: access ends and the copy is deleted {time}",
    conn_access_until: "Ongoing, until {time}",
    conn_access_ongoing: "Ongoing, until you remove it",
    conn_health_plan: "Health plan",
    popup_done_title: "You're signed in",
    popup_done_intro: "You can close this window and go back to the app.",
    popup_error_title: "The sign-in did not finish",
    popup_error_intro: "Close this window and go back to the app to try again.",
    other_browser_title: "This link was opened in another browser",
    other_browser_intro: "For your safety, a connection can only go on in the browser where it started. Nothing was shared. Go back to the app and start again from there.",
    rate_limited_title: "Too many attempts",
    rate_limited_intro: "Too many connections were started from your network in a short time. Wait a minute, then go back to the app and try again.",
};

/// Spanish.
pub static ES: Msgs = Msgs {
    lang: "es",
    test_mode: "Modo de prueba",
    close: "Cerrar",
    dialog_label: "Conecte su plan de salud",
    consent_title: "{app} quiere conectarse a su plan de salud",
    consent_intro: "{app} usa este servicio para obtener una copia de sus registros de salud de su plan de salud, con su permiso.",
    consent_what: "Lo que {app} recibirá",
    consent_claims: "Reclamaciones: consultas, recetas y lo que se pagó",
    consent_coverage: "Detalles de su plan y cobertura",
    consent_clinical: "Registros médicos que tiene su plan, como afecciones, alergias, medicamentos y resultados de laboratorio",
    consent_selected: "Solo estos tipos de registros: {list}",
    consent_how_long: "Por cuánto tiempo",
    consent_one_time: "Una vez. Sus registros se borran de este servicio 24 horas después de conectarse.",
    consent_multiple: "De forma continua. Sus registros se actualizan mientras su plan lo permita, hasta que usted lo retire.",
    consent_withdraw_title: "Cómo retirar el permiso",
    consent_withdraw: "Puede retirar su permiso en cualquier momento: pida a {app} que desconecte su plan, o quite la aplicación en la configuración de su cuenta del plan de salud. No se comparte nada antes de que inicie sesión con su plan.",
    signature_label: "Escriba su nombre completo para firmar",
    signature_hint: "Su nombre escrito es su firma electrónica de este consentimiento.",
    signature_missing: "Escriba su nombre completo para firmar antes de continuar.",
    agree: "Acepto, continuar",
    decline: "No, gracias",
    explainer_title: "Cómo funciona",
    explainer_step1: "Busque su plan de salud.",
    explainer_step2: "Inicie sesión en el sitio web de su plan de salud, en una ventana nueva. Puede que muestre el nombre del servicio que lo conecta en lugar de {app}.",
    explainer_step3: "Sus registros se copian a {app}.",
    explainer_safe_title: "Por qué es seguro",
    explainer_safe: "Su contraseña va solo a su plan de salud, nunca a {app} ni a nosotros. La conexión usa el estándar que el gobierno de EE. UU. exige a los planes de salud (SMART on FHIR).",
    continue_: "Continuar",
    search_title: "Busque su plan de salud",
    search_label: "Nombre del plan de salud",
    search_hint: "Por ejemplo: el nombre que aparece en su tarjeta de miembro.",
    search_button: "Buscar",
    results_label: "Planes de salud",
    no_results: "Ningún plan coincide con ese nombre. Revise la ortografía o pruebe otro nombre.",
    connect: "Conectar",
    connect_to: "Conectar con {plan}",
    health_usual_minutes: "Suele tardar unos {minutes} minutos",
    health_usual_minute: "Suele tardar alrededor de un minuto",
    health_unsteady: "Algunas personas no pudieron conectarse últimamente. Es posible que deba intentarlo de nuevo.",
    health_failing: "Este plan tiene problemas en este momento. Puede intentarlo de todos modos o volver más tarde.",
    missing_summary: "¿No encuentra su plan?",
    missing_intro: "Díganos su nombre y pediremos que lo agreguen. Esto cierra la conexión por ahora; puede intentarlo más tarde.",
    missing_label: "Nombre de su plan de salud",
    missing_send: "Enviar y cerrar",
    precheck_title: "Antes de continuar",
    precheck_account: "Necesitará su cuenta en línea de {portal} para conectar {plan}: su usuario y contraseña.",
    precheck_idp: "{plan} le pide iniciar sesión con {idp}.",
    precheck_types: "Atiende: {types}.",
    precheck_no_account: "¿Aún no tiene cuenta?",
    precheck_create: "Cree una en el sitio del plan",
    precheck_new_tab: "(se abre en una pestaña nueva)",
    remind_later: "Recordármelo más tarde",
    connect_title: "Conéctese a su plan de salud",
    connect_intro: "Iniciará sesión en el sitio web de su plan de salud en una ventana nueva.",
    payer_title: "Inicie sesión con su plan de salud",
    payer_waiting: "Termine de iniciar sesión en la ventana que se abrió. Esta página se actualiza sola cuando termine.",
    payer_blocked: "Su navegador bloqueó la ventana de inicio de sesión.",
    payer_closed: "La ventana de inicio de sesión se cerró antes de terminar.",
    continue_to_plan: "Continuar a su plan de salud",
    choose_another: "Elegir otro plan",
    try_again: "Intentar de nuevo",
    syncing_title: "Obteniendo sus registros",
    syncing_intro: "Su plan de salud aceptó. Se están copiando sus registros; puede tardar un minuto.",
    syncing_progress: "Registros recibidos hasta ahora",
    syncing_none_yet: "Comenzando…",
    syncing_check_again: "Ver el progreso",
    success_title: "Ya está conectado",
    success_intro: "Su plan de salud está conectado a {app}.",
    success_closing: "Volviendo a {app}…",
    success_returned: "Puede cerrar esta ventana y volver a {app}.",
    success_more: "¿Tiene otro plan de salud, como un segundo plan o uno anterior? También puede conectarlo.",
    success_another: "Conectar otro plan",
    success_done: "Listo",
    success_count: "{n} planes conectados",
    error_title: "Algo salió mal",
    exit: "Salir",
    error_code_label: "Código de error",
    exited_title: "Puede cerrar esta ventana",
    exited_intro: "No se compartió nada.",
    expired_title: "Este enlace ha vencido",
    expired_intro: "Empiece de nuevo desde la aplicación de la que vino.",
    invalid_link_title: "Este enlace no es válido",
    return_to_app: "Volver a {app}",
    conn_title: "Sus planes de salud conectados",
    conn_lede: "Usted compartió datos de estos planes de salud con {app}. Si quita uno, se deja de compartir y la copia que guardamos se borra de inmediato.",
    conn_none: "No tiene planes de salud conectados.",
    conn_list_label: "Planes de salud conectados",
    conn_remove: "Quitar {plan}",
    conn_confirm_question: "¿Quitar {plan}?",
    conn_confirm_detail: "{app} dejará de recibir sus registros de {plan} y la copia que guardamos se borrará de inmediato. No se puede deshacer; para volver a compartir, tendría que conectar el plan de nuevo desde {app}.",
    conn_confirm_yes: "Sí, quitar {plan}",
    conn_confirm_keep: "Conservarlo",
    conn_confirm_first: "No se quitó nada. Pulse Quitar de nuevo y confírmelo.",
    conn_removed: "Se quitó {plan}. Sus datos se borraron.",
    conn_removed_generic: "Se quitó la conexión. Sus datos se borraron.",
    conn_not_removed: "No se pudo quitar esa conexión. Puede que ya se haya quitado.",
    conn_expired: "El enlace de esta página venció o no es válido.",
    conn_go_back: "Vuelva a la aplicación de la que vino y abra de nuevo sus planes conectados.",
    conn_internal: "Algo salió mal de nuestro lado. Inténtelo de nuevo en un momento.",
    conn_unreachable: "No pudimos comunicarnos con el servidor. Revise su conexión e inténtelo de nuevo.",
    conn_needs_reconnect: "Debe volver a conectarlo",
    conn_shared: "Compartido",
    conn_linked: "Conectado",
    conn_access: "Acceso",
    conn_access_ended: "Su plan terminó el acceso continuo. La copia se guarda hasta el {time}, salvo que la quite.",
    conn_access_one_time: "Una sola vez: el acceso termina y la copia se borra el {time}",
    conn_access_until: "Continuo, hasta el {time}",
    conn_access_ongoing: "Continuo, hasta que lo quite",
    conn_health_plan: "Plan de salud",
    popup_done_title: "Ha iniciado sesión",
    popup_done_intro: "Puede cerrar esta ventana y volver a la aplicación.",
    popup_error_title: "El inicio de sesión no terminó",
    popup_error_intro: "Cierre esta ventana y vuelva a la aplicación para intentarlo de nuevo.",
    other_browser_title: "Este enlace se abrió en otro navegador",
    other_browser_intro: "Por su seguridad, una conexión solo puede continuar en el navegador donde empezó. No se compartió nada. Vuelva a la aplicación y empiece de nuevo desde allí.",
    rate_limited_title: "Demasiados intentos",
    rate_limited_intro: "Se iniciaron demasiadas conexiones desde su red en poco tiempo. Espere un minuto, vuelva a la aplicación e inténtelo de nuevo.",
};

/// The catalogue of a language tag (`es…` → Spanish, anything else → English).
pub fn msgs(lang: &str) -> &'static Msgs {
    if spanish(lang) {
        &ES
    } else {
        &EN
    }
}

/// Whether `lang` (`es`, `es-MX`, `ES`…) picks the Spanish catalogue; anything else is English.
fn spanish(lang: &str) -> bool {
    lang.to_ascii_lowercase().starts_with("es")
}

/// The page language: the `language` option (`en`, `es`, `es-MX`…) when it names a shipped catalogue,
/// otherwise the browser's `Accept-Language` ([`negotiate`]), otherwise `en`. Every patient page chooses with this.
pub fn choose(language: Option<&str>, accept_language: Option<&str>) -> &'static str {
    match language.map(str::to_ascii_lowercase) {
        Some(l) if l.starts_with("es") => "es",
        Some(l) if l.starts_with("en") => "en",
        _ => negotiate(accept_language.unwrap_or("")),
    }
}

/// Picks `en` or `es` from an `Accept-Language` header, honouring q-values (RFC 9110 §12.5.4).
pub fn negotiate(accept_language: &str) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for part in accept_language.split(',') {
        let mut it = part.trim().split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok()))
            .unwrap_or(1.0);
        let lang = if tag.starts_with("es") {
            "es"
        } else if tag.starts_with("en") {
            "en"
        } else {
            continue;
        };
        if best.is_none_or(|(_, bq)| q > bq) {
            best = Some((lang, q));
        }
    }
    best.map(|(l, _)| l).unwrap_or("en")
}

/// A moment as patients read it, in UTC: "29 Nov 2026, 22:18 UTC" (`en`), "29 nov 2026, 22:18 UTC" (`es`).
/// `unix`: seconds since the Unix epoch; an out-of-range value gives an empty string.
#[cfg(feature = "ssr")]
pub fn human_time(lang: &str, unix: i64) -> String {
    const EN_MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const ES_MONTHS: [&str; 12] = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"];
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else { return String::new() };
    let months = if spanish(lang) { ES_MONTHS } else { EN_MONTHS };
    let month = months[usize::from(u8::from(t.month())) - 1];
    format!("{} {month} {}, {:02}:{:02} UTC", t.day(), t.year(), t.hour(), t.minute())
}

/// The kind of a resource type not in [`RECORD_KINDS`]: (English, Spanish).
const OTHER_RECORDS: (&str, &str) = ("Other records", "Otros registros");

/// Plain words for kinds of FHIR records (resource types), in display order: (types, English, Spanish).
const RECORD_KINDS: &[(&[&str], &str, &str)] = &[
    (&["Patient"], "Your profile", "Su perfil"),
    (&["Coverage"], "Insurance coverage", "Cobertura del seguro"),
    (&["ExplanationOfBenefit", "Claim", "ClaimResponse"], "Claims", "Reclamaciones"),
    (&["Condition"], "Conditions", "Afecciones"),
    (&["Observation"], "Test results and vital signs", "Resultados de pruebas y signos vitales"),
    (&["DiagnosticReport"], "Lab and imaging reports", "Informes de laboratorio e imágenes"),
    (
        &["MedicationRequest", "MedicationStatement", "MedicationDispense", "Medication"],
        "Medications",
        "Medicamentos",
    ),
    (&["AllergyIntolerance"], "Allergies", "Alergias"),
    (&["Immunization"], "Immunizations", "Vacunas"),
    (&["Procedure"], "Procedures", "Procedimientos"),
    (&["Encounter"], "Visits", "Visitas"),
    (&["DocumentReference"], "Clinical documents", "Documentos clínicos"),
    (&["Practitioner", "PractitionerRole"], "Care providers", "Profesionales de la salud"),
    (&["Organization"], "Health care organizations", "Organizaciones de salud"),
    (&["Location"], "Places of care", "Lugares de atención"),
];

/// Record counts by FHIR resource type (`counts`) as the patient reads them: plain words in `lang`, types of
/// one kind summed (e.g. the four medication types), kinds in a fixed order, anything else last as "Other
/// records". Rows with a zero total are left out.
pub fn record_kinds(lang: &str, counts: &[(String, i64)]) -> Vec<(String, i64)> {
    let es = spanish(lang);
    let mut rows: Vec<(String, i64)> = Vec::new();
    let mut other = 0;
    for (rtype, n) in counts {
        if !RECORD_KINDS.iter().any(|(types, _, _)| types.contains(&rtype.as_str())) {
            other += n;
        }
    }
    for (types, en_label, es_label) in RECORD_KINDS {
        let n: i64 = counts.iter().filter(|(t, _)| types.contains(&t.as_str())).map(|(_, n)| n).sum();
        if n > 0 {
            rows.push(((if es { *es_label } else { *en_label }).to_string(), n));
        }
    }
    if other > 0 {
        rows.push(((if es { OTHER_RECORDS.1 } else { OTHER_RECORDS.0 }).to_string(), other));
    }
    rows
}

/// The distinct kinds (plain words in `lang`) of some FHIR resource types, in [`record_kinds`] order.
pub fn record_kind_labels(lang: &str, types: &[String]) -> Vec<String> {
    let ones: Vec<(String, i64)> = types.iter().map(|t| (t.clone(), 1)).collect();
    record_kinds(lang, &ones).into_iter().map(|(label, _)| label).collect()
}

/// A plain-language explanation of an exit code for the error screen.
pub fn exit_message(lang: &str, code: &str) -> &'static str {
    let es = spanish(lang);
    match code {
        "PAYER_ACCESS_DENIED" => if es { "No se dio permiso en su plan de salud, así que no se compartió nada." } else { "Access was not allowed at your health plan, so nothing was shared." },
        "PAYER_TIMEOUT" => if es { "Su plan de salud tardó demasiado en responder. Inténtelo de nuevo en unos minutos." } else { "Your health plan took too long to answer. Try again in a few minutes." },
        "PAYER_SERVER_ERROR" => if es { "El sistema de su plan de salud tiene un problema en este momento. Inténtelo más tarde." } else { "Your health plan's system is having a problem right now. Try again later." },
        "PAYER_TOKEN_EXCHANGE_FAILED" => if es { "Su plan de salud no completó la conexión. Inténtelo de nuevo." } else { "Your health plan did not finish the connection. Try again." },
        "PLAN_NOT_REACHABLE" => if es { "Su plan no está disponible a través de este sitio de inicio de sesión. Pruebe con otro plan." } else { "Your plan is not available through this sign-in site. Try another plan." },
        "PAYER_INVALID_REQUEST" | "MALFORMED_PAYER_CALLBACK" => if es { "Su plan de salud no entendió la solicitud. Inténtelo de nuevo o elija otro plan." } else { "Your health plan did not understand the request. Try again or choose another plan." },
        "INVALID_STATE" => if es { "Este inicio de sesión ya no es válido. Vuelva a empezar con su plan." } else { "This sign-in is no longer valid. Start again with your plan." },
        "ENDPOINT_CONFIGURATION_ERROR" | "SCOPE_CONFIGURATION_ERROR" => if es { "Este plan no está bien configurado aquí. Elija otro plan o inténtelo más tarde." } else { "This plan is not set up correctly here. Choose another plan or try later." },
        "SYNC_FAILED" => if es { "Se conectó, pero no pudimos obtener sus registros. Inténtelo de nuevo." } else { "You connected, but we could not get your records. Try again." },
        "INVALID_ENDPOINT" | "ENDPOINT_MODE_MISMATCH" => if es { "Ese plan de salud no está disponible aquí." } else { "That health plan is not available here." },
        "BROWSER_MISMATCH" => if es { "Esta conexión empezó en otro navegador (o su navegador borró sus datos). Vuelva a la aplicación y empiece de nuevo en este navegador." } else { "This connection started in another browser (or your browser cleared its data). Go back to the app and start again in this browser." },
        "RATE_LIMITED" => if es { "Se iniciaron demasiadas conexiones en poco tiempo. Espere un minuto e inténtelo de nuevo." } else { "Too many connections were started in a short time. Wait a minute and try again." },
        "INVALID_PUBLISHABLE_KEY" | "INVALID_USER" | "INVALID_USAGE" => if es { "La aplicación no pudo iniciar la conexión. Vuelva a la aplicación e inténtelo de nuevo." } else { "The app could not start the connection. Go back to the app and try again." },
        _ => if es { "No se compartió nada." } else { "Nothing was shared." },
    }
}

/// Replaces `{app}` in a catalogue string.
pub fn with_app(s: &str, app: &str) -> String {
    s.replace("{app}", app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_kinds_in_plain_words() {
        let counts: Vec<(String, i64)> = [("ExplanationOfBenefit", 24), ("MedicationRequest", 2), ("Medication", 3), ("Patient", 1), ("Basic", 4)]
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .collect();
        assert_eq!(
            record_kinds("en", &counts),
            vec![("Your profile".into(), 1), ("Claims".into(), 24), ("Medications".into(), 5), ("Other records".into(), 4)]
        );
        assert_eq!(record_kinds("es", &counts)[1], ("Reclamaciones".to_string(), 24));
        assert!(record_kinds("en", &[]).is_empty());
    }

    #[test]
    fn accept_language() {
        assert_eq!(negotiate("es-MX,es;q=0.9,en;q=0.8"), "es");
        assert_eq!(negotiate("en-US,en;q=0.9"), "en");
        assert_eq!(negotiate("fr-FR, es;q=0.5, en;q=0.6"), "en");
        assert_eq!(negotiate(""), "en");
        assert_eq!(choose(Some("ES-mx"), Some("en")), "es");
        assert_eq!(choose(Some("en"), Some("es")), "en");
        assert_eq!(choose(Some("fr"), Some("es-MX,en;q=0.5")), "es", "an unshipped language falls back to the browser's");
        assert_eq!(choose(None, None), "en");
    }
}
