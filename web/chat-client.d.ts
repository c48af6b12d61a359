// chat-client.d.ts: the types of chat-client.js (the ChatClient class and
// newId).  Documented in README.md ("chat-client.js").  Only what a page
// uses is declared; the class's other methods are its own business.

/** A chat message as the API sends it (`../shared/API.md`). */
export interface Message {
  conversation_id: number;
  seq: number;
  sender_id: number;
  client_msg_id: string;
  text: string;
  created_at: string;
  edited_at?: string;
  deleted?: boolean;
  edit_seq?: number;
  attachments?: Attachment[];
  /** a blocked sender's message: no text */
  hidden?: boolean;
}

export interface Attachment {
  id: number | string;
  url: string;
  content_type: string;
  size: number;
  name: string;
}

export interface Ack {
  client_msg_id: string;
  conversation_id: number;
  seq: number;
  created_at: string;
}

export type ConnectionState = 'connecting' | 'ws' | 'polling' | 'offline';

export interface ChatClientOptions {
  /** the API token, or a function giving the current one */
  token: string | (() => string);
  /** asked (once until a connection works again) when the server refuses
   *  the token: a new token, or null to give up (the client then stops and
   *  emits `error` with status 401) */
  refreshToken?: () => Promise<string | null>;
  /** the HTTP origin; default `location.origin` */
  base?: string;
  /** default `<base>/ws` */
  wsUrl?: string;
  /** `{conversation_id: seq}` already shown */
  cursors?: Record<string, number>;
  /** `{conversation_id: last_edit_seq}` of the list the cursors came from */
  editCursors?: Record<string, number>;
  /** while polling, how often to try WebSocket again (default 20 s) */
  retryWsMs?: number;
  /** ping interval (default 10 s); a link silent for 1.5 x this is dropped */
  heartbeatMs?: number;
}

export interface ChatClientEvents {
  message: Message;
  message_update: Message;
  ack: Ack;
  typing: { conversation_id: number; user_id: number };
  receipt: { conversation_id: number; user_id: number; kind: 'delivered' | 'read'; seq: number };
  presence: { user_id: number; status: 'online' | 'offline'; last_seen?: string };
  block: { user_id: number; blocked: boolean };
  read: { conversation_id: number; last_read_seq: number };
  conversation: Record<string, unknown> & { id: number };
  /** an order of this user changed (the order object of the API) */
  order: Record<string, unknown> & { id: number; status: string };
  /** (admins) what an admin, the reconciler or the carrier changed: the
   *  back office fetches that book, its stock or that order again */
  admin_change: { kind: 'book' | 'stock' | 'order'; id: number; by: number };
  stale: Record<string, unknown> & { id: number; last_edit_seq: number };
  state: { state: ConnectionState };
  synced: Record<string, never>;
  capability: { typing: boolean; receipts: boolean; message?: string };
  /** an open WebSocket was closed by the server or the network; the client
   *  reconnects next (1008: token expired or signed out, 1001: going away,
   *  1006: lost) */
  closed: { code: number; reason: string; wasClean: boolean };
  /** the refreshToken hook gave a new token; the client reconnects with it */
  token: Record<string, never>;
  error: { code: string; message: string; status?: number; client_msg_id?: string; conversation_id?: number };
}

export class ChatClient extends EventTarget {
  constructor(opts: ChatClientOptions);

  readonly state: ConnectionState;
  readonly supports: { typing: boolean | null };

  start(): void;
  stop(): void;
  /** sends once, whatever the connection does meanwhile; the ack when stored */
  send(conversationId: number | string, text: string, clientMsgId?: string): Promise<Ack>;
  /** false where typing cannot be sent (long-polling, or not supported) */
  typing(conversationId: number | string): boolean;
  read(conversationId: number | string, seq: number): void;
  delivered(conversationId: number | string, seq: number): void;
  history(conversationId: number | string,
          query?: { before_seq?: number; after_seq?: number; limit?: number })
    : Promise<{ messages: Message[]; has_more: boolean }>;
  /** follow a conversation from seq (e.g. one just created) */
  track(conversationId: number | string, seq?: number): void;
  edit(conversationId: number | string, seq: number, text: string): Promise<Message>;
  remove(conversationId: number | string, seq: number): Promise<Message>;
  /** the newest copy of a message seen so far */
  freshest(message: Message): Message;

  addEventListener<K extends keyof ChatClientEvents>(type: K,
    listener: (event: CustomEvent<ChatClientEvents[K]>) => void,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ChatClientEvents>(type: K,
    listener: (event: CustomEvent<ChatClientEvents[K]>) => void,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}

/** a fresh client_msg_id */
export function newId(): string;
