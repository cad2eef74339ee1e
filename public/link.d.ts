// Type declarations of the Link SDK script (`<script src="https://your-link-server/link.js">`), which defines
// the global `FlexpaLink`. Served at /link.d.ts and /link/v1/link.d.ts.
//
// The contract: every `open()` ends with exactly one call, `onSuccess(public_token)` or `onExit(error)`.
// - `onSyncing(public_token)` comes first when the payer authorized. Your backend may exchange that token at once
//   (to start polling `/fhir/*`, which answers 429 until the data is ready); doing so changes nothing the page
//   sees: `onSuccess` still fires with the same token (already spent, so do not exchange it a second time).
// - Closing the modal (its close button, Esc, or `exit()`) ends it according to where the patient is:
//   before the payer authorized: `onExit({code: 'PATIENT_CANCELLED'})`; on an error screen: `onExit` with that
//   error's code; after the payer authorized (syncing or success screen): `onSuccess(public_token)`, the token
//   `onSyncing` delivered (the sync goes on on the server: the link exists and the token is valid).
// - A session belongs to the browser that opened it: a step that arrives without its binding (the modal's own
//   copy or its cookie, e.g. lost when the browser cleared Link's data) ends it with
//   `onExit({code: 'BROWSER_MISMATCH'})`; too many sessions started from one network end with `RATE_LIMITED`.
// - With `multiplePlans: true` the patient may link several plans in one sitting: `onSuccess(public_token,
//   metadata)` fires once per plan linked (each its own authorization and token) and the modal stays open on the
//   success screen ("Connect another plan" / "Done"); the ending is then one `onExit()`, without an error once a
//   plan was linked (Done, ×, Esc, `exit()`, or closing a later plan's error screen), else `onExit({code})`
//   exactly as without the option. Without the option nothing of this changes.

/** Why a Link session ended without success (`onExit`). */
export type LinkExitCode =
  | 'PATIENT_CANCELLED'
  | 'PAYER_TOKEN_EXCHANGE_FAILED'
  | 'INVALID_ENDPOINT'
  | 'ENDPOINT_MODE_MISMATCH'
  | 'INVALID_PUBLISHABLE_KEY'
  | 'MALFORMED_PAYER_CALLBACK'
  | 'INVALID_STATE'
  | 'INVALID_USER'
  | 'INVALID_USAGE'
  | 'SYNC_FAILED'
  | 'PAYER_ACCESS_DENIED'
  | 'PAYER_TIMEOUT'
  | 'PLAN_NOT_REACHABLE'
  | 'PAYER_INVALID_REQUEST'
  | 'PAYER_SERVER_ERROR'
  | 'ENDPOINT_CONFIGURATION_ERROR'
  | 'SCOPE_CONFIGURATION_ERROR'
  | 'BROWSER_MISMATCH'
  | 'RATE_LIMITED'
  /** Repair mode: the `repairToken` is malformed, unknown, expired or used, or its authorization ended. */
  | 'INVALID_REPAIR_TOKEN'
  /** Repair mode: the patient signed in as another member of the plan; nothing changed. */
  | 'REPAIR_PATIENT_MISMATCH';

/** The argument of `onExit`. */
export interface LinkExitError {
  code: LinkExitCode;
}

/** Steps reported to `onEvent` (no health data in the metadata). */
export type LinkEventName =
  | 'OPEN'
  | 'CONSENT_GIVEN'
  | 'CONSENT_DECLINED'
  | 'SEARCH'
  /** "Can't find your plan?": the patient sent a plan's name; Link then ends with `PATIENT_CANCELLED`. */
  | 'PLAN_NOT_FOUND'
  /** "Remind me later" on the pre-check screen (the plan needs an online account); Link then ends with `PATIENT_CANCELLED`. */
  | 'REMIND_LATER'
  | 'ENDPOINT_SELECTED'
  | 'HANDOFF'
  | 'POPUP_BLOCKED'
  | 'POPUP_CLOSED'
  | 'PAYER_AUTHORIZED'
  /** The plan's sign-in matched a link this user already had (same plan, same patient): that one was renewed. */
  | 'PLAN_REUSED'
  | 'SYNC_STARTED'
  /** `multiplePlans`: the patient chose "Connect another plan" on the success screen. */
  | 'ANOTHER_PLAN'
  | 'SUCCESS'
  | 'EXIT'
  | 'ERROR';

/** The second argument of `onSuccess` with `multiplePlans: true` (absent without it). */
export interface LinkSuccessMetadata {
  /** The plan's endpoint UUID. */
  endpointId: string | null;
  /**
   * The sign-in renewed an authorization this user already had for the same plan and patient (MULTIPLE links
   * only): the token exchanges to that authorization, not a new one.
   */
  reused: boolean;
}

/** Options of `FlexpaLink.create`. */
export interface LinkCreateOptions {
  /** `pk_test_…` or `pk_live_…`. */
  publishableKey: string;
  /** Your identifier of the patient. */
  user: { externalId: string };
  /** `ONE_TIME`: data deleted after 24 hours. `MULTIPLE`: refreshed for as long as the plan allows. */
  usage: 'ONE_TIME' | 'MULTIPLE';
  /**
   * Called once with the `public_token` your backend exchanges at `POST /link/exchange` (single use, 30 minutes):
   * when the sync is done (and, with `autoExit: false`, the patient pressed Continue), or when the patient closes
   * the modal after the payer authorized (the sync then goes on: `/fhir/*` answers 429 until the data is ready).
   * It is the same token `onSyncing` delivered: if your backend exchanged it there, do not exchange it again.
   * With `multiplePlans: true`: called once per plan linked, with `metadata`, and the modal stays open.
   */
  onSuccess: (publicToken: string, metadata?: LinkSuccessMetadata) => void;
  /**
   * Called when the payer authorized and the sync started, with the `public_token` (once per token: a patient who
   * retries another plan after a failed sync authorizes again and gets a new one). Exchanging it at once is fine:
   * `onSuccess` still follows with the same token.
   */
  onSyncing?: (publicToken: string) => void;
  /** Called once when the modal has loaded. */
  onLoad?: () => void;
  /**
   * Called exactly once on every ending other than success: the patient declined or closed the modal before the
   * payer authorized (`PATIENT_CANCELLED`), closed an error screen (that error's code), the options were invalid,
   * or the session timed out (`PATIENT_CANCELLED`). Never called after `onSuccess`, and vice versa.
   */
  onExit?: (error?: LinkExitError) => void;
  /** Called at each step, for funnel analytics. */
  onEvent?: (name: LinkEventName, metadata: Record<string, unknown>) => void;
  /** Endpoint UUID: skips the plan search. */
  endpoint?: string;
  /** Close the modal and call `onSuccess` without waiting for Continue (default `true`). */
  autoExit?: boolean;
  /** Skip the syncing screen (default `false`). */
  skipSyncing?: boolean;
  /** Skip the explainer screen (default `false`). */
  skipExplainer?: boolean;
  /**
   * Let the patient link several plans in one sitting (default `false`): the success screen offers "Connect
   * another plan" and "Done"; `onSuccess(publicToken, metadata)` fires once per plan, and the modal ends with one
   * `onExit()` (no error once a plan was linked). Consent covers the whole session. `autoExit` does not apply.
   */
  multiplePlans?: boolean;
  /** FHIR resource types to request (default: all the endpoint offers). */
  requestedResources?: string[];
  /**
   * The screens' language: `en` (English), `es` (Spanish) or `ko` (Korean); default: the browser's
   * `Accept-Language`, else English. Any other value is treated as absent. The patient can change it with the
   * consent screen's language picker; the choice holds for the rest of the session.
   */
  language?: 'en' | 'es' | 'ko';
}

/** What `FlexpaLink.create` returns. */
export interface LinkHandle {
  /** Opens the modal. Call it from a user gesture (a click). */
  open(options?: { endpoint?: string }): void;
  /**
   * Closes the modal this handle opened at once (a modal another handle opened stays open), as the patient's close
   * button would: `onExit({code: 'PATIENT_CANCELLED'})` before
   * the payer authorized (an error screen's code on an error screen), `onSuccess(public_token)` after it.
   */
  exit(): void;
}

/**
 * Options of `FlexpaLink.create` in repair mode: the patient renews an existing authorization's payer grant
 * (docs/repair.md). `repairToken` comes from your backend (`POST /link/repair`, single use, 30 minutes, spent when
 * the modal opens); the user, usage and plan are the authorization's (`user` and `usage`, when given, must match).
 * Plan search and the explainer are skipped and the consent screen says it is a renewal. `onSuccess` gets a
 * `public_token` that exchanges to the same authorization (exchanging it is optional: your existing
 * `access_token` and `refresh_token` keep working). A sign-in as another member ends with
 * `onExit({code: 'REPAIR_PATIENT_MISMATCH'})` and changes nothing.
 */
export interface LinkRepairOptions
  extends Omit<LinkCreateOptions, 'user' | 'usage' | 'endpoint' | 'multiplePlans' | 'requestedResources'> {
  /** `rpt_…` from `POST /link/repair`. */
  repairToken: string;
  /** The authorization's user (optional; must match). */
  user?: { externalId: string };
  /** The authorization's usage (optional; must match: repair is for `MULTIPLE`). */
  usage?: 'MULTIPLE';
}

/** The `FlexpaLink` global. */
export interface FlexpaLinkStatic {
  create(options: LinkCreateOptions | LinkRepairOptions): LinkHandle;
  readonly version: string;
}

declare global {
  interface Window {
    FlexpaLink: FlexpaLinkStatic;
  }
  const FlexpaLink: FlexpaLinkStatic;
}
