// A folder's list: heads decrypted here for display and search, the node's notices, and the
// delivery state of messages sent to other organisations.
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import * as api from '../api';
import * as client from '../client';
import type { Session, Opened } from '../client';
import { ErrorBox, Icon, initials, when } from '../ui';
import { DeliveryChips, FOLDERS, Reason } from '../mail';

export function Mailbox({ session, folder, search, onUnread }: { session: Session; folder: string; search: string; onUnread: (n: number) => void }) {
  const [items, setItems] = useState<api.MailboxItem[] | null>(null);
  const [notices, setNotices] = useState<api.Notice[]>([]);
  const [heads, setHeads] = useState<Record<string, Opened | Error>>({});
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      const r = await api.get('/mailbox/{folder}', { folder });
      setItems(r.items);
      setNotices((r.notices ?? []).filter((n) => n.unread));
      if (folder === 'inbox') onUnread(r.items.filter((i) => i.unread).length);
      // Decrypt the heads (subject, body) here, for display and search; never stored.
      for (const it of r.items.slice(0, 200)) {
        client.openHead(session, it.message_id)
          .then((o) => setHeads((hs) => ({ ...hs, [it.message_id]: o })))
          .catch((e) => setHeads((hs) => ({ ...hs, [it.message_id]: e instanceof Error ? e : new Error(String(e)) })));
      }
    } catch (e) {
      setError(e);
    }
  }, [folder, session]);

  // Deliveries to other organisations are asynchronous: while one is still queued, look
  // again every few seconds rather than every 20.
  const pending = !!items?.some((it) => it.delivery?.some((d) => d.state === 'queued'));
  useEffect(() => {
    setItems(null);
    load();
  }, [load]);
  useEffect(() => {
    const t = setInterval(load, pending ? 3_000 : 20_000);
    return () => clearInterval(t);
  }, [load, pending]);

  // A notice names the message by its ID; show its subject instead (decrypted here, as ever).
  const [noticeSubjects, setNoticeSubjects] = useState<Record<string, string>>({});
  useEffect(() => {
    for (const n of notices) {
      const id = n.message_id;
      if (!id || noticeSubjects[id] !== undefined) continue;
      setNoticeSubjects((m) => ({ ...m, [id]: '' }));
      client.openHead(session, id).then((o) => setNoticeSubjects((m) => ({ ...m, [id]: o.head.subject || '(no subject)' }))).catch(() => {});
    }
  }, [notices]);

  const dismiss = async (n: api.Notice) => {
    setNotices((ns) => ns.filter((x) => x.id !== n.id));
    try { await api.post('/notices/{id}/read', { id: n.id }); } catch (e) { setError(e); }
  };

  const q = search.trim().toLowerCase();
  const shown = useMemo(() => {
    if (!items) return [];
    if (!q) return items;
    return items.filter((it) => {
      const o = heads[it.message_id];
      const hay = [it.from, ...it.to, o && !(o instanceof Error) ? [o.head.subject, o.head.body, ...o.head.attachments.map((a) => a.name)].join(' ') : ''].join(' ').toLowerCase();
      return hay.includes(q);
    });
  }, [items, heads, q]);

  const title = FOLDERS.find((f) => f.id === folder)?.label ?? folder;
  return (
    <section aria-labelledby="folder-title">
      <div class="section-head">
        <h1 id="folder-title">{title}</h1>
        <button class="btn btn-ghost" onClick={load} aria-label="Refresh">↻ Refresh</button>
      </div>
      {folder === 'inbox' && notices.length > 0 && (
        <div class="notices" role="region" aria-label="Notices from your node" data-testid="notices">
          {notices.map((n) => (
            <div class="alert alert-warn notice" role="alert" data-testid="notice">
              <span class="notice-icon" aria-hidden="true">⚠</span>
              <div class="grow">
                <div><Reason text={noticeText(n, n.message_id ? noticeSubjects[n.message_id] : undefined)} /></div>
                <div class="small notice-meta">{when(n.created_at)}{n.message_id && <> · <a href={`#/mail/sent/${n.message_id}`}>Open the message in Sent</a></>}</div>
              </div>
              <button class="btn btn-ghost btn-sm" onClick={() => dismiss(n)} aria-label="Dismiss this notice">Dismiss</button>
            </div>
          ))}
        </div>
      )}
      {q && <p class="muted" data-testid="search-note">Searching {items?.length ?? 0} message{items?.length === 1 ? '' : 's'} decrypted on this device for “{search}”: {shown.length} found.</p>}
      <ErrorBox error={error} />
      {items === null && !error && <div class="skeleton-list" aria-busy="true">{[0, 1, 2].map(() => <div class="skeleton" />)}</div>}
      {items && shown.length === 0 && (
        <div class="empty">{q ? 'No message matches your search.' : folder === 'inbox' ? 'Your inbox is empty. Messages sent to you appear here.' : 'Nothing here yet.'}</div>
      )}
      <ul class="message-list" data-testid="message-list">
        {shown.map((it) => {
          const o = heads[it.message_id];
          const other = folder === 'sent' ? `To ${it.to.join(', ')}` : it.from;
          return (
            <li>
              <a href={`#/mail/${folder}/${it.message_id}`} class={`message-row ${it.unread ? 'unread' : ''}`} data-testid="message-row">
                <span class="avatar" aria-hidden="true">{initials(folder === 'sent' ? it.to[0] ?? '?' : it.from)}</span>
                <span class="row-main">
                  <span class="row-top">
                    <span class="row-from">{it.unread && <span class="dot" aria-label="unread" />}{other}{it.via === 'smtp' && (it.arrival?.submitted
                      ? <span class="mode-tag mode-mail" data-testid="row-via-gateway" title="Sent from a mail program through your organisation's gateway">mail program</span>
                      : <span class="mode-tag mode-mail" data-testid="row-via-smtp" title="Came from outside by mail">by mail</span>)}</span>
                    <span class="row-date">{when(it.received_at)}</span>
                  </span>
                  <span class="row-subject">
                    {o === undefined ? <span class="muted">Decrypting…</span> : o instanceof client.RegisteredClosed ? <span data-testid="row-registered" data-state={o.state}><span class="mode-tag mode-mail">registered</span> {o.state === 'refused' ? 'You refused this registered message' : 'Opening confirms receipt'}</span> : o instanceof Error ? <span class="text-bad">Cannot open: {o.message}</span> : o.head.subject || '(no subject)'}
                  </span>
                  <span class="row-snippet muted">
                    {o && !(o instanceof Error) && <>{o.head.attachments.length > 0 && <span class="clip" aria-label="has attachments"><Icon name="clip" size={14} /></span>}{o.head.body.slice(0, 140)}</>}
                  </span>
                  {folder === 'sent' && it.delivery && it.delivery.length > 0 && <DeliveryChips delivery={it.delivery} />}
                </span>
              </a>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** A notice's text with the message's subject in place of its ID, once known. */
function noticeText(n: api.Notice, subject: string | undefined): string {
  if (!n.message_id) return n.text;
  return n.text.replace(`message ${n.message_id}`, subject ? `message “${subject}”` : 'message');
}
