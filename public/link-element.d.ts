/**
 * Types of `<flexpa-link>` (served at /link/v1/link-element.js, after /link.js): a custom element over the
 * FlexpaLink global. Attributes: `publishable-key`, `usage` (`ONE_TIME` | `MULTIPLE`), `external-id`, and optional
 * `endpoint`, `language`, `skip-explainer`, `skip-syncing`, `label` (the default button's text).
 */
import type { LinkEventName, LinkExitCode } from './link';

export interface FlexpaLinkElementEventMap {
  /** The payer authorized and the sync started. */
  syncing: CustomEvent<{ publicToken: string }>;
  /** The session ended with success: exchange `publicToken` at `POST /link/exchange`. */
  success: CustomEvent<{ publicToken: string }>;
  /** The session ended without success (`LINK_SCRIPT_MISSING` when /link.js was not loaded). */
  exit: CustomEvent<{ code: LinkExitCode | 'LINK_SCRIPT_MISSING' }>;
  /** A step of the session, for funnel analytics. */
  event: CustomEvent<{ name: LinkEventName; metadata: Record<string, unknown> }>;
}

export interface FlexpaLinkElement extends HTMLElement {
  /** Opens Link with the element's attributes (call it from a user gesture). */
  open(): void;
  addEventListener<K extends keyof FlexpaLinkElementEventMap>(
    type: K,
    listener: (this: FlexpaLinkElement, ev: FlexpaLinkElementEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'flexpa-link': FlexpaLinkElement;
  }
}
