//! The message catalogue of every patient-facing string of the Link flow and the connections page, in English,
//! Spanish and Korean ([`LANGUAGES`]).
//!
//! Compiled in both builds. `{app}` in a string is replaced by the app's name, `{plan}` by the plan's name,
//! `{time}` by a date and time from [`human_time`].
//! The consent strings are recorded verbatim in `consents.text`: change them only together with
//! [`CONSENT_TEXT_VERSION`](super::CONSENT_TEXT_VERSION).

/// Every string of the flow in one language.
#[derive(Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Msgs {
    pub lang: &'static str,
    /// The name of the language picker ("Language").
    pub language_label: &'static str,
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
    /// Repair mode: the consent screen's title and first paragraph say it renews an existing connection.
    pub consent_renew_title: &'static str,
    pub consent_renew_intro: &'static str,
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
    // A hosted (re-connect) link that was already used, or has expired
    pub hosted_used_title: &'static str,
    pub hosted_used_intro: &'static str,
    pub hosted_expired_intro: &'static str,
}

/// English.
pub static EN: Msgs = Msgs {
    lang: "en",
    language_label: "Language",
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
    consent_renew_title: "Renew {app}'s connection to your health plan",
    consent_renew_intro: "Your health plan needs you to sign in again so that {app} can keep receiving your health records. You connected this plan before: sign in as the same member. Nothing else changes.",
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
    hosted_used_title: "This link was already used",
    hosted_used_intro: "Each connection link works once, in the browser where it was first opened. If you still need to connect, ask the app for a new link.",
    hosted_expired_intro: "Connection links work for a limited time. Ask the app for a new link.",
};

/// Spanish.
pub static ES: Msgs = Msgs {
    lang: "es",
    language_label: "Idioma",
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
    consent_renew_title: "Renueve la conexión de {app} con su plan de salud",
    consent_renew_intro: "Su plan de salud necesita que vuelva a iniciar sesión para que {app} pueda seguir recibiendo sus registros de salud. Usted ya conectó este plan: inicie sesión como el mismo miembro. Nada más cambia.",
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
    hosted_used_title: "Este enlace ya se usó",
    hosted_used_intro: "Cada enlace de conexión funciona una sola vez, en el navegador donde se abrió por primera vez. Si todavía necesita conectarse, pida a la aplicación un enlace nuevo.",
    hosted_expired_intro: "Los enlaces de conexión funcionan por un tiempo limitado. Pida a la aplicación un enlace nuevo.",
};

/// Korean.
pub static KO: Msgs = Msgs {
    lang: "ko",
    language_label: "언어",
    test_mode: "테스트 모드",
    close: "닫기",
    dialog_label: "건강보험 연결",
    consent_title: "{app}에서 건강보험 연결을 요청합니다",
    consent_intro: "{app}에서는 본인의 허락을 받아, 이 서비스를 통해 가입하신 건강보험에서 본인의 건강 기록 사본을 받습니다.",
    consent_what: "{app}에서 받게 되는 정보",
    consent_claims: "청구 내역: 진료, 처방 및 지급된 금액",
    consent_coverage: "보험 및 보장 내용",
    consent_clinical: "건강보험이 보관하고 있는 의료 기록(질환, 알레르기, 약물, 검사 결과 등)",
    consent_selected: "다음 종류의 기록만: {list}",
    consent_how_long: "공유 기간",
    consent_one_time: "한 번만. 연결하고 24시간이 지나면 이 서비스에서 기록이 삭제됩니다.",
    consent_multiple: "계속. 동의를 철회하실 때까지, 건강보험이 허용하는 동안 기록이 계속 업데이트됩니다.",
    consent_withdraw_title: "동의 철회",
    consent_withdraw: "언제든지 동의를 철회할 수 있습니다. {app}에 보험 연결 해제를 요청하거나, 건강보험 계정 설정에서 앱을 삭제하세요. 건강보험에 로그인하기 전에는 아무것도 공유되지 않습니다.",
    consent_renew_title: "{app}의 건강보험 연결을 갱신합니다",
    consent_renew_intro: "{app}에서 건강 기록을 계속 받을 수 있도록 건강보험에 다시 로그인해야 합니다. 이전에 연결한 보험이므로 같은 가입자로 로그인하세요. 그 외에는 달라지는 것이 없습니다.",
    signature_label: "서명하려면 성명을 입력하세요",
    signature_hint: "입력하신 성명은 이 동의에 대한 전자 서명이 됩니다.",
    signature_missing: "계속하기 전에 서명할 성명을 입력하세요.",
    agree: "동의하고 계속하기",
    decline: "동의하지 않음",
    explainer_title: "이용 방법",
    explainer_step1: "가입하신 건강보험을 찾습니다.",
    explainer_step2: "새 창에서 건강보험 웹사이트에 직접 로그인합니다. 화면에 {app} 대신 연결을 돕는 서비스의 이름이 표시될 수 있습니다.",
    explainer_step3: "기록이 {app}에 복사됩니다.",
    explainer_safe_title: "안전한 이유",
    explainer_safe: "비밀번호는 건강보험에만 전달되며, {app} 또는 저희에게는 절대 전달되지 않습니다. 이 연결은 미국 정부가 건강보험에 제공을 의무화한 표준(SMART on FHIR)을 사용합니다.",
    continue_: "계속",
    search_title: "건강보험 찾기",
    search_label: "건강보험 이름",
    search_hint: "예: 보험 카드에 적힌 이름",
    search_button: "검색",
    results_label: "건강보험 목록",
    no_results: "일치하는 건강보험이 없습니다. 철자를 확인하거나 다른 이름으로 검색해 보세요.",
    connect: "연결",
    connect_to: "{plan}에 연결",
    health_usual_minutes: "보통 {minutes}분 정도 걸립니다",
    health_usual_minute: "보통 1분 정도 걸립니다",
    health_unsteady: "최근 일부 사용자가 연결하지 못했습니다. 다시 시도해야 할 수도 있습니다.",
    health_failing: "이 보험은 현재 문제가 있습니다. 그래도 시도해 보시거나 나중에 다시 오셔도 됩니다.",
    missing_summary: "보험을 찾을 수 없나요?",
    missing_intro: "보험 이름을 알려 주시면 추가를 요청하겠습니다. 이번 연결은 여기서 닫히며, 나중에 다시 시도하실 수 있습니다.",
    missing_label: "건강보험 이름",
    missing_send: "보내고 닫기",
    precheck_title: "계속하기 전에",
    precheck_account: "{plan}에 연결하려면 {portal}의 온라인 계정(아이디와 비밀번호)이 필요합니다.",
    precheck_idp: "{plan}에는 {idp} 계정으로 로그인합니다.",
    precheck_types: "가입 유형: {types}.",
    precheck_no_account: "아직 계정이 없으신가요?",
    precheck_create: "보험 웹사이트에서 계정 만들기",
    precheck_new_tab: "(새 탭에서 열림)",
    remind_later: "나중에 하기",
    connect_title: "건강보험에 연결",
    connect_intro: "새 창에서 건강보험 웹사이트에 로그인하게 됩니다.",
    payer_title: "건강보험에 로그인",
    payer_waiting: "열린 창에서 로그인을 마치세요. 로그인이 끝나면 이 페이지가 자동으로 바뀝니다.",
    payer_blocked: "브라우저가 로그인 창을 차단했습니다.",
    payer_closed: "로그인을 마치기 전에 로그인 창이 닫혔습니다.",
    continue_to_plan: "건강보험으로 이동",
    choose_another: "다른 보험 선택",
    try_again: "다시 시도",
    syncing_title: "기록을 가져오는 중",
    syncing_intro: "건강보험에서 허락했습니다. 기록을 복사하고 있으며, 1분 정도 걸릴 수 있습니다.",
    syncing_progress: "지금까지 받은 기록",
    syncing_none_yet: "시작하는 중…",
    syncing_check_again: "진행 상황 확인",
    success_title: "연결되었습니다",
    success_intro: "건강보험이 {app}에 연결되었습니다.",
    success_closing: "{app} 화면으로 돌아가는 중…",
    success_returned: "이 창을 닫고 {app} 화면으로 돌아가셔도 됩니다.",
    success_more: "두 번째 보험이나 이전 보험처럼 다른 건강보험도 있으신가요? 함께 연결하실 수 있습니다.",
    success_another: "다른 건강보험 연결하기",
    success_done: "완료",
    success_count: "건강보험 {n}개 연결됨",
    error_title: "문제가 발생했습니다",
    exit: "나가기",
    error_code_label: "오류 코드",
    exited_title: "이 창을 닫으셔도 됩니다",
    exited_intro: "아무것도 공유되지 않았습니다.",
    expired_title: "만료된 링크입니다",
    expired_intro: "이용하시던 앱에서 다시 시작하세요.",
    invalid_link_title: "유효하지 않은 링크입니다",
    return_to_app: "{app} 화면으로 돌아가기",
    conn_title: "연결된 건강보험",
    conn_lede: "이 건강보험들의 데이터를 {app}에 공유하셨습니다. 연결을 해제하면 공유가 중단되고, 저희가 보관한 사본도 즉시 삭제됩니다.",
    conn_none: "연결된 건강보험이 없습니다.",
    conn_list_label: "연결된 건강보험",
    conn_remove: "{plan} 연결 해제",
    conn_confirm_question: "{plan} 연결을 해제할까요?",
    conn_confirm_detail: "{app}에서 더 이상 {plan}의 기록을 받지 않으며, 저희가 보관한 사본은 즉시 삭제됩니다. 되돌릴 수 없습니다. 다시 공유하려면 {app}에서 보험을 다시 연결해야 합니다.",
    conn_confirm_yes: "네, {plan} 연결 해제",
    conn_confirm_keep: "유지하기",
    conn_confirm_first: "아무것도 해제되지 않았습니다. 연결 해제를 다시 누르고 확인하세요.",
    conn_removed: "{plan} 연결이 해제되었습니다. 데이터가 삭제되었습니다.",
    conn_removed_generic: "연결이 해제되었습니다. 데이터가 삭제되었습니다.",
    conn_not_removed: "해당 연결을 해제할 수 없습니다. 이미 해제되었을 수 있습니다.",
    conn_expired: "이 페이지의 링크가 만료되었거나 유효하지 않습니다.",
    conn_go_back: "이용하시던 앱으로 돌아가 연결된 보험 목록을 다시 여세요.",
    conn_internal: "저희 쪽에 문제가 생겼습니다. 잠시 후 다시 시도하세요.",
    conn_unreachable: "서버에 연결할 수 없습니다. 인터넷 연결을 확인하고 다시 시도하세요.",
    conn_needs_reconnect: "다시 연결 필요",
    conn_shared: "공유한 기록",
    conn_linked: "연결한 날짜",
    conn_access: "접근 권한",
    conn_access_ended: "건강보험에서 지속적인 접근을 종료했습니다. 직접 삭제하지 않으면 사본은 {time}까지 보관됩니다.",
    conn_access_one_time: "1회: {time}에 접근이 끝나고 사본이 삭제됩니다",
    conn_access_until: "지속, {time}까지",
    conn_access_ongoing: "지속, 연결을 해제할 때까지",
    conn_health_plan: "건강보험",
    popup_done_title: "로그인되었습니다",
    popup_done_intro: "이 창을 닫고 앱으로 돌아가세요.",
    popup_error_title: "로그인이 완료되지 않았습니다",
    popup_error_intro: "이 창을 닫고 앱으로 돌아가 다시 시도하세요.",
    other_browser_title: "다른 브라우저에서 열린 링크입니다",
    other_browser_intro: "안전을 위해 연결은 시작한 브라우저에서만 계속할 수 있습니다. 아무것도 공유되지 않았습니다. 앱으로 돌아가 처음부터 다시 시작하세요.",
    rate_limited_title: "시도 횟수가 너무 많습니다",
    rate_limited_intro: "짧은 시간 동안 사용 중인 네트워크에서 너무 많은 연결이 시작되었습니다. 1분 정도 기다린 후 앱으로 돌아가 다시 시도하세요.",
    hosted_used_title: "이미 사용된 링크입니다",
    hosted_used_intro: "연결 링크는 처음 연 브라우저에서 한 번만 사용할 수 있습니다. 아직 연결이 필요하시면 앱에 새 링크를 요청하세요.",
    hosted_expired_intro: "연결 링크는 정해진 기간 동안만 사용할 수 있습니다. 앱에 새 링크를 요청하세요.",
};

/// The shipped languages, in the order the language picker lists them: (code, the language's name in itself).
pub const LANGUAGES: [(&str, &str); 3] = [("en", "English"), ("es", "Español"), ("ko", "한국어")];

/// The shipped language a language tag names, by its primary subtag (RFC 5646 §2.2.1, case-insensitive):
/// `es-MX` → `es`, `KO` → `ko`; `None` for any other language.
pub fn shipped(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
    LANGUAGES.iter().map(|(code, _)| *code).find(|code| primary.eq_ignore_ascii_case(code))
}

/// A shipped language, for the tables below that have one entry per language.
#[derive(Clone, Copy)]
enum Lang {
    En,
    Es,
    Ko,
}

impl Lang {
    /// The language of tag `lang` (anything not shipped is English).
    fn of(lang: &str) -> Lang {
        match shipped(lang) {
            Some("es") => Lang::Es,
            Some("ko") => Lang::Ko,
            _ => Lang::En,
        }
    }

    /// This language's entry of `[English, Spanish, Korean]`.
    fn pick<T: Copy>(self, entries: [T; 3]) -> T {
        entries[self as usize]
    }
}

/// The catalogue of a language tag (`es…` → Spanish, `ko…` → Korean, anything else → English).
pub fn msgs(lang: &str) -> &'static Msgs {
    Lang::of(lang).pick([&EN, &ES, &KO])
}

/// The page language: the `language` option (`en`, `es`, `ko`, `es-MX`…) when it names a shipped catalogue,
/// otherwise the browser's `Accept-Language` ([`negotiate`]), otherwise `en`. Every patient page chooses with this.
pub fn choose(language: Option<&str>, accept_language: Option<&str>) -> &'static str {
    match language.and_then(shipped) {
        Some(l) => l,
        None => negotiate(accept_language.unwrap_or("")),
    }
}

/// Picks a shipped language (`en`, `es`, `ko`) from an `Accept-Language` header, honouring q-values (RFC 9110
/// §12.5.4; `q=0` means "not acceptable"); `en` when none is acceptable.
pub fn negotiate(accept_language: &str) -> &'static str {
    let mut best: Option<(&'static str, f32)> = None;
    for part in accept_language.split(',') {
        let mut it = part.trim().split(';');
        let Some(lang) = shipped(it.next().unwrap_or("")) else { continue };
        let q = it
            .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok()))
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((lang, q));
        }
    }
    best.map(|(l, _)| l).unwrap_or("en")
}

/// A moment as patients read it, in UTC: "29 Nov 2026, 22:18 UTC" (`en`), "29 nov 2026, 22:18 UTC" (`es`),
/// "2026년 11월 29일 22:18 UTC" (`ko`). `unix`: seconds since the Unix epoch; an out-of-range value gives an empty
/// string.
#[cfg(feature = "ssr")]
pub fn human_time(lang: &str, unix: i64) -> String {
    const EN_MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const ES_MONTHS: [&str; 12] = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"];
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else { return String::new() };
    let (day, month, year, hour, minute) = (t.day(), u8::from(t.month()), t.year(), t.hour(), t.minute());
    match Lang::of(lang) {
        Lang::Ko => format!("{year}년 {month}월 {day}일 {hour:02}:{minute:02} UTC"),
        l => {
            let month = l.pick([EN_MONTHS, ES_MONTHS, EN_MONTHS])[usize::from(month) - 1];
            format!("{day} {month} {year}, {hour:02}:{minute:02} UTC")
        }
    }
}

/// The kind of a resource type not in [`RECORD_KINDS`]: [English, Spanish, Korean].
const OTHER_RECORDS: [&str; 3] = ["Other records", "Otros registros", "기타 기록"];

/// Plain words for kinds of FHIR records (resource types), in display order: (types, [English, Spanish, Korean]).
const RECORD_KINDS: &[(&[&str], [&str; 3])] = &[
    (&["Patient"], ["Your profile", "Su perfil", "본인 정보"]),
    (&["Coverage"], ["Insurance coverage", "Cobertura del seguro", "보험 보장 내용"]),
    (&["ExplanationOfBenefit", "Claim", "ClaimResponse"], ["Claims", "Reclamaciones", "청구 내역"]),
    (&["Condition"], ["Conditions", "Afecciones", "질환"]),
    (&["Observation"], ["Test results and vital signs", "Resultados de pruebas y signos vitales", "검사 결과 및 활력 징후"]),
    (&["DiagnosticReport"], ["Lab and imaging reports", "Informes de laboratorio e imágenes", "검사 및 영상 판독 보고서"]),
    (
        &["MedicationRequest", "MedicationStatement", "MedicationDispense", "Medication"],
        ["Medications", "Medicamentos", "약물"],
    ),
    (&["AllergyIntolerance"], ["Allergies", "Alergias", "알레르기"]),
    (&["Immunization"], ["Immunizations", "Vacunas", "예방접종"]),
    (&["Procedure"], ["Procedures", "Procedimientos", "시술 및 수술"]),
    (&["Encounter"], ["Visits", "Visitas", "진료 방문"]),
    (&["DocumentReference"], ["Clinical documents", "Documentos clínicos", "진료 문서"]),
    (&["Practitioner", "PractitionerRole"], ["Care providers", "Profesionales de la salud", "의료진"]),
    (&["Organization"], ["Health care organizations", "Organizaciones de salud", "의료 기관"]),
    (&["Location"], ["Places of care", "Lugares de atención", "진료 장소"]),
];

/// Record counts by FHIR resource type (`counts`) as the patient reads them: plain words in `lang`, types of
/// one kind summed (e.g. the four medication types), kinds in a fixed order, anything else last as "Other
/// records". Rows with a zero total are left out.
pub fn record_kinds(lang: &str, counts: &[(String, i64)]) -> Vec<(String, i64)> {
    let l = Lang::of(lang);
    let mut rows: Vec<(String, i64)> = Vec::new();
    let mut other = 0;
    for (rtype, n) in counts {
        if !RECORD_KINDS.iter().any(|(types, _)| types.contains(&rtype.as_str())) {
            other += n;
        }
    }
    for (types, labels) in RECORD_KINDS {
        let n: i64 = counts.iter().filter(|(t, _)| types.contains(&t.as_str())).map(|(_, n)| n).sum();
        if n > 0 {
            rows.push((l.pick(*labels).to_string(), n));
        }
    }
    if other > 0 {
        rows.push((l.pick(OTHER_RECORDS).to_string(), other));
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
    Lang::of(lang).pick(match code {
        "PAYER_ACCESS_DENIED" => [
            "Access was not allowed at your health plan, so nothing was shared.",
            "No se dio permiso en su plan de salud, así que no se compartió nada.",
            "건강보험에서 접근을 허용하지 않아 아무것도 공유되지 않았습니다.",
        ],
        "PAYER_TIMEOUT" => [
            "Your health plan took too long to answer. Try again in a few minutes.",
            "Su plan de salud tardó demasiado en responder. Inténtelo de nuevo en unos minutos.",
            "건강보험의 응답이 너무 늦습니다. 몇 분 후에 다시 시도하세요.",
        ],
        "PAYER_SERVER_ERROR" => [
            "Your health plan's system is having a problem right now. Try again later.",
            "El sistema de su plan de salud tiene un problema en este momento. Inténtelo más tarde.",
            "현재 건강보험 시스템에 문제가 있습니다. 나중에 다시 시도하세요.",
        ],
        "PAYER_TOKEN_EXCHANGE_FAILED" => [
            "Your health plan did not finish the connection. Try again.",
            "Su plan de salud no completó la conexión. Inténtelo de nuevo.",
            "건강보험에서 연결을 완료하지 못했습니다. 다시 시도하세요.",
        ],
        "PLAN_NOT_REACHABLE" => [
            "Your plan is not available through this sign-in site. Try another plan.",
            "Su plan no está disponible a través de este sitio de inicio de sesión. Pruebe con otro plan.",
            "가입하신 보험은 이 로그인 사이트에서 이용할 수 없습니다. 다른 보험을 선택해 보세요.",
        ],
        "PAYER_INVALID_REQUEST" | "MALFORMED_PAYER_CALLBACK" => [
            "Your health plan did not understand the request. Try again or choose another plan.",
            "Su plan de salud no entendió la solicitud. Inténtelo de nuevo o elija otro plan.",
            "건강보험에서 요청을 처리하지 못했습니다. 다시 시도하거나 다른 보험을 선택하세요.",
        ],
        "INVALID_STATE" => [
            "This sign-in is no longer valid. Start again with your plan.",
            "Este inicio de sesión ya no es válido. Vuelva a empezar con su plan.",
            "이 로그인은 더 이상 유효하지 않습니다. 보험 로그인을 처음부터 다시 하세요.",
        ],
        "ENDPOINT_CONFIGURATION_ERROR" | "SCOPE_CONFIGURATION_ERROR" => [
            "This plan is not set up correctly here. Choose another plan or try later.",
            "Este plan no está bien configurado aquí. Elija otro plan o inténtelo más tarde.",
            "이 보험은 여기에서 올바르게 설정되어 있지 않습니다. 다른 보험을 선택하거나 나중에 다시 시도하세요.",
        ],
        "SYNC_FAILED" => [
            "You connected, but we could not get your records. Try again.",
            "Se conectó, pero no pudimos obtener sus registros. Inténtelo de nuevo.",
            "연결은 되었지만 기록을 가져오지 못했습니다. 다시 시도하세요.",
        ],
        "INVALID_ENDPOINT" | "ENDPOINT_MODE_MISMATCH" => [
            "That health plan is not available here.",
            "Ese plan de salud no está disponible aquí.",
            "해당 건강보험은 여기에서 이용할 수 없습니다.",
        ],
        "BROWSER_MISMATCH" => [
            "This connection started in another browser (or your browser cleared its data). Go back to the app and start again in this browser.",
            "Esta conexión empezó en otro navegador (o su navegador borró sus datos). Vuelva a la aplicación y empiece de nuevo en este navegador.",
            "이 연결은 다른 브라우저에서 시작되었습니다(또는 브라우저 데이터가 삭제되었습니다). 앱으로 돌아가 이 브라우저에서 다시 시작하세요.",
        ],
        "RATE_LIMITED" => [
            "Too many connections were started in a short time. Wait a minute and try again.",
            "Se iniciaron demasiadas conexiones en poco tiempo. Espere un minuto e inténtelo de nuevo.",
            "짧은 시간 동안 너무 많은 연결이 시작되었습니다. 1분 정도 기다린 후 다시 시도하세요.",
        ],
        "REPAIR_PATIENT_MISMATCH" => [
            "You signed in as a different member than the one connected before, so nothing was changed. Try again and sign in as the same member.",
            "Inició sesión como un miembro distinto del que se conectó antes, así que no se cambió nada. Inténtelo de nuevo e inicie sesión como el mismo miembro.",
            "이전에 연결한 가입자와 다른 가입자로 로그인하여 아무것도 변경되지 않았습니다. 다시 시도하여 같은 가입자로 로그인하세요.",
        ],
        "INVALID_REPAIR_TOKEN" => [
            "This renewal link is no longer valid. Go back to the app and start the renewal again.",
            "Este enlace de renovación ya no es válido. Vuelva a la aplicación y empiece la renovación de nuevo.",
            "이 갱신 링크는 더 이상 유효하지 않습니다. 앱으로 돌아가 갱신을 다시 시작하세요.",
        ],
        "INVALID_PUBLISHABLE_KEY" | "INVALID_USER" | "INVALID_USAGE" => [
            "The app could not start the connection. Go back to the app and try again.",
            "La aplicación no pudo iniciar la conexión. Vuelva a la aplicación e inténtelo de nuevo.",
            "앱에서 연결을 시작하지 못했습니다. 앱으로 돌아가 다시 시도하세요.",
        ],
        _ => ["Nothing was shared.", "No se compartió nada.", "아무것도 공유되지 않았습니다."],
    })
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
        assert_eq!(negotiate("ko-KR,ko;q=0.9,en-US;q=0.8"), "ko");
        assert_eq!(negotiate("ko;q=0, es;q=0.2"), "es", "q=0 is not acceptable");
        assert_eq!(choose(Some("KO-kr"), Some("es")), "ko");
        assert_eq!(choose(Some("ja"), Some("ko")), "ko");
        assert_eq!(choose(Some("kok"), None), "en", "a primary subtag, never a prefix");
        assert_eq!(shipped("es_MX"), Some("es"));
        assert_eq!(shipped("fr"), None);
    }

    /// Every shipped language has every message English has, none empty, each with exactly English's
    /// placeholders (`{app}`, `{plan}`…), so no screen shows a raw `{…}` or drops a name.
    #[test]
    fn every_language_has_every_message_with_its_placeholders() {
        fn placeholders(s: &str) -> Vec<String> {
            let mut out: Vec<String> = s.split('{').skip(1).filter_map(|p| p.split_once('}')).map(|(n, _)| n.to_string()).collect();
            out.sort();
            out
        }
        let en = serde_json::to_value(&EN).unwrap();
        let en = en.as_object().unwrap();
        for (code, _) in LANGUAGES {
            let m = msgs(code);
            assert_eq!(m.lang, code);
            let other = serde_json::to_value(m).unwrap();
            let other = other.as_object().unwrap();
            assert_eq!(other.len(), en.len(), "{code}");
            for (key, english) in en {
                let text = other.get(key).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{code}: {key} missing"));
                assert!(!text.trim().is_empty(), "{code}: {key} is empty");
                assert_eq!(placeholders(text), placeholders(english.as_str().unwrap()), "{code}: {key}");
            }
            for kind in RECORD_KINDS.iter().map(|(_, labels)| labels).chain([&OTHER_RECORDS]) {
                assert!(kind.iter().all(|l| !l.is_empty()), "{kind:?}");
            }
            for exit in ["PAYER_ACCESS_DENIED", "SYNC_FAILED", "BROWSER_MISMATCH", "UNKNOWN"] {
                assert_ne!(exit_message(code, exit), "", "{code}: {exit}");
            }
        }
        assert_eq!(record_kinds("ko", &[("ExplanationOfBenefit".into(), 2)]), vec![("청구 내역".to_string(), 2)]);
        assert_eq!(exit_message("ko-KR", "SYNC_FAILED"), "연결은 되었지만 기록을 가져오지 못했습니다. 다시 시도하세요.");
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn human_time_in_each_language() {
        let t = 1_795_904_280; // 2026-11-28 22:18 UTC
        assert_eq!(human_time("en", t), "28 Nov 2026, 22:18 UTC");
        assert_eq!(human_time("es", t), "28 nov 2026, 22:18 UTC");
        assert_eq!(human_time("ko", t), "2026년 11월 28일 22:18 UTC");
    }
}
