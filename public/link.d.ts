// Type declarations of the Link SDK script (`<script src="https://your-link-server/link.js">`), which defines
// the global `FlexpaLink`. Served at /link.d.ts and /link/v1/link.d.ts.

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
  | 'SCOPE_CONFIGURATION_ERROR';

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
  | 'ENDPOINT_SELECTED'
  | 'HANDOFF'
  | 'POPUP_BLOCKED'
  | 'POPUP_CLOSED'
  | 'PAYER_AUTHORIZED'
  | 'SYNC_STARTED'
  | 'SUCCESS'
  | 'EXIT'
  | 'ERROR';

/** Options of `FlexpaLink.create`. */
export interface LinkCreateOptions {
  /** `pk_test_…` or `pk_live_…`. */
  publishableKey: string;
  /** Your identifier of the patient. */
  user: { externalId: string };
  /** `ONE_TIME`: data deleted after 24 hours. `MULTIPLE`: refreshed for as long as the plan allows. */
  usage: 'ONE_TIME' | 'MULTIPLE';
  /** Called once with the `public_token` your backend exchanges at `POST /link/exchange`. */
  onSuccess: (publicToken: string) => void;
  /** Called once when the payer authorized and the sync started. */
  onSyncing?: (publicToken: string) => void;
  /** Called once when the modal has loaded. */
  onLoad?: () => void;
  /** Called exactly once on every ending other than success. */
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
  /** FHIR resource types to request (default: all the endpoint offers). */
  requestedResources?: string[];
  /** `en` or `es` (default: the browser's `Accept-Language`). */
  language?: 'en' | 'es';
}

/** What `FlexpaLink.create` returns. */
export interface LinkHandle {
  /** Opens the modal. Call it from a user gesture (a click). */
  open(options?: { endpoint?: string }): void;
  /** Closes the modal as if the patient cancelled (`onExit` with `PATIENT_CANCELLED`). */
  exit(): void;
}

/** The `FlexpaLink` global. */
export interface FlexpaLinkStatic {
  create(options: LinkCreateOptions): LinkHandle;
  readonly version: string;
}

declare global {
  interface Window {
    FlexpaLink: FlexpaLinkStatic;
  }
  const FlexpaLink: FlexpaLinkStatic;
}
