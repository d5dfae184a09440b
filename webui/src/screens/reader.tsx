// Reading one message: decrypted and verified here, the sender's trust and why, attachments,
// reply and forward, archive and delete.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { VerdictView } from '../api';
import * as client from '../client';
import type { Session, Opened } from '../client';
import {
  Badge, ErrorBox, TrustPath,
  badgeOf, fullDate, go, initials, saveBlob,
} from '../ui';
import { DeliveryChips, FOLDERS, MODE_HEADINGS, deliveryMode, type ComposeSeed } from '../mail';
import type { Arrival, DeliveryMode, MailDelivery } from '../mail-wire';
import { AttachmentList } from '../files';
import { MucCodes, type ShownCode } from '../muc';
import type { PickupEnvelope } from '../pickup-wire';

export function MessageView({ session, folder, id, onCompose }: { session: Session; folder: api.Folder; id: string; onCompose: (seed: ComposeSeed) => void }) {
  const [o, setO] = useState<Opened | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [verdict, setVerdict] = useState<VerdictView | null | undefined>(undefined);
  const [showPath, setShowPath] = useState(false);
  const [progress, setProgress] = useState<Record<number, { value: number; stage: string }>>({});
  const [attError, setAttError] = useState<unknown>(null);
  const [delivery, setDelivery] = useState<MailDelivery[]>([]);
  /** Mail that came by SMTP answering this message of ours, or the message a mail answers. */
  const [replies, setReplies] = useState<{ id: string; from: string; subject: string }[]>([]);
  const [answers, setAnswers] = useState<{ id: string; subject: string } | null>(null);
  const [pickupBusy, setPickupBusy] = useState<string | null>(null);
  const [pickupError, setPickupError] = useState<unknown>(null);
  const [newCode, setNewCode] = useState<ShownCode | null>(null);
  // When this message was opened for the compliance archive (docs/compliance.md, "Dual control").
  const [complianceOpens, setComplianceOpens] = useState<number[]>([]);
  /** Registered for us and not open (docs/evidence.md): the notice, before any part is fetched. */
  const [closed, setClosed] = useState<client.RegisteredClosed | null>(null);
  /** Bumped once a receipt is accepted: the message is opened as usual. */
  const [reload, setReload] = useState(0);
  useEffect(() => {
    setComplianceOpens([]);
    api.get('/messages/{id}/compliance-opens', { id }).then((l) => setComplianceOpens(l.map((x) => x.at)), () => {});
  }, [id]);

  // While a copy for another organisation is queued, or a pickup's notification mail is not
  // sent yet, follow it until its node has it or the relay answered.
  const queued = delivery.some((d) => d.state === 'queued' || d.state === 'pickup');
  useEffect(() => {
    if (!queued) return;
    const t = setInterval(async () => {
      try { setDelivery((await api.get('/messages/{id}', { id })).item.delivery ?? []); } catch { /* keep the last state */ }
    }, 3_000);
    return () => clearInterval(t);
  }, [id, queued]);

  useEffect(() => {
    let live = true;
    // The same screen shows the next message (a thread's link): nothing of the last one stays.
    setAnswers(null);
    setReplies([]);
    setClosed(null);
    (async () => {
      try {
        let opened: Opened;
        try {
          opened = await client.openHead(session, id);
        } catch (e) {
          if (e instanceof client.RegisteredClosed) {
            if (live) setClosed(e);
            return;
          }
          throw e;
        }
        if (!live) return;
        setO(opened);
        setDelivery(opened.item.delivery ?? []);
        // The opened head is cached; its delivery states are not: ask again for a sent message.
        if (opened.item.folder === 'sent' && opened.item.delivery?.length) {
          api.get('/messages/{id}', { id }).then((m) => live && setDelivery(m.item.delivery ?? []), () => {});
        }
        if (opened.item.unread && opened.item.folder !== 'sent') client.markRead(id).catch(() => {});
        if (opened.arrived) {
          // Its sender has no Sealpost key: the arrival mark says what is known of it instead.
          setVerdict(null);
          const of = opened.arrived.inReplyTo;
          if (of) client.openHead(session, of).then((t) => live && setAnswers({ id: of, subject: t.head.subject }), () => live && setAnswers({ id: of, subject: '' }));
          return;
        }
        if (opened.envelope.from === session.account.address) {
          // The thread: mail that came by SMTP in answer to this message (`in_reply_to`).
          api.get('/mailbox/{folder}', { folder: 'inbox' }).then(async (r) => {
            const found = r.items.filter((it) => it.in_reply_to === id);
            const shown = await Promise.all(found.map(async (it) => {
              const subject = await client.openHead(session, it.message_id).then((h) => h.head.subject, () => '');
              return { id: it.message_id, from: it.from, subject };
            }));
            if (live) setReplies(shown);
          }, () => {});
        }
        const keys = await client.trust(opened.envelope.from);
        if (live) setVerdict(keys.find((k) => k.fingerprint.toUpperCase() === opened.signer) ?? null);
      } catch (e) {
        if (live) setError(e);
      }
    })();
    return () => { live = false; };
  }, [id, reload]);

  const download = async (i: number) => {
    if (!o) return;
    setAttError(null);
    if (o.arrived) {
      // Decrypted with the mail already (part 0 holds the whole mail): offered from memory.
      const a = o.arrived.entity.attachments[i];
      saveBlob(new Blob([a.data as BlobPart], { type: a.mediaType }), o.head.attachments[i].name);
      return;
    }
    try {
      const blob = await client.openAttachment(session, o, i, (value, stage) => setProgress((p) => ({ ...p, [i]: { value, stage } })));
      saveBlob(blob, o.head.attachments[i].name);
    } catch (e) {
      setAttError(e);
      setProgress((p) => { const c = { ...p }; delete c[i]; return c; });
    }
  };

  const move = async (to: api.Folder) => {
    try {
      await api.post('/messages/{id}/move', { id }, { from: folder, to });
      go(`mail/${folder}`);
    } catch (e) {
      setError(e);
    }
  };

  const remove = async () => {
    // Said before, not discovered later: a compliance copy of ours outlives the user's delete
    // (docs/compliance.md, "Retention and legal holds").
    const archived = (o?.raw.compliance ?? []).includes(session.org.domain);
    if (!confirm(archived
      ? `Delete this message from your mailbox? This cannot be undone. Its copy in the compliance archive of ${session.org.domain} stays until your organisation's retention period ends.`
      : 'Delete this message from your mailbox? This cannot be undone.')) return;
    try {
      await api.del('/messages/{id}', { id });
      go(`mail/${folder}`);
    } catch (e) {
      setError(e);
    }
  };

  const refresh = async () => setDelivery((await api.get('/messages/{id}', { id })).item.delivery ?? []);
  const withdraw = async (address: string) => {
    if (!confirm(`Withdraw this message from ${address}? Its key is deleted: nobody can open it any more.`)) return;
    setPickupBusy(address);
    setPickupError(null);
    try {
      await client.withdrawPickup(id, address);
      await refresh();
    } catch (e) {
      setPickupError(e);
    } finally {
      setPickupBusy(null);
    }
  };
  const relock = async (address: string) => {
    if (!o) return;
    setPickupBusy(address);
    setPickupError(null);
    try {
      const muc = await client.relockPickup(session, o, address);
      setNewCode({ address, muc });
      await refresh();
    } catch (e) {
      setPickupError(e);
    } finally {
      setPickupBusy(null);
    }
  };

  const reply = () => o && onCompose({
    to: [o.envelope.from === session.account.address ? o.head.to[0] : o.envelope.from],
    subject: /^re:/i.test(o.head.subject) ? o.head.subject : `Re: ${o.head.subject}`,
    body: `\n\nOn ${fullDate(o.head.sent_at)}, ${o.envelope.from} wrote:\n${o.head.body.split('\n').map((l) => `> ${l}`).join('\n')}`,
    // A reply to mail from outside names it, so the sender's mail program threads it.
    inReplyTo: o.arrived?.entity.messageId && /^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$/.test(o.arrived.entity.messageId) ? o.arrived.entity.messageId : undefined,
  });
  const forward = () => o && onCompose({
    to: [],
    subject: /^fwd:/i.test(o.head.subject) ? o.head.subject : `Fwd: ${o.head.subject}`,
    body: `\n\n---------- Forwarded message ----------\nFrom: ${o.envelope.from}\nDate: ${fullDate(o.head.sent_at)}\nSubject: ${o.head.subject}\nTo: ${o.head.to.join(', ')}\n\n${o.head.body}`,
    forwardFrom: o,
  });

  if (closed) return <RegisteredGate session={session} folder={folder} closed={closed} onAccepted={() => setReload((n) => n + 1)} onRefused={(c) => setClosed(c)} />;

  if (error) return <section><a href={`#/mail/${folder}`} class="back">← Back</a><ErrorBox error={error} title="This message cannot be opened." /></section>;
  if (!o) return <section aria-busy="true"><a href={`#/mail/${folder}`} class="back">← Back</a><div class="skeleton tall" /><p class="muted">Decrypting and verifying…</p></section>;

  if (newCode) return <MucCodes codes={[newCode]} title={`New unlock code for ${newCode.address}`} onDone={() => setNewCode(null)} />;

  const b = badgeOf(verdict);
  const pickupOf = (o.envelope as PickupEnvelope).pickup ?? {};
  const mine = o.envelope.from === session.account.address;
  const pickupRows = mine ? delivery.filter((d) => deliveryMode(d, pickupOf) === 'pickup') : [];
  return (
    <article class="reader" aria-labelledby="msg-subject" data-testid="reader">
      <div class="reader-actions">
        <a href={`#/mail/${folder}`} class="back">← {FOLDERS.find((f) => f.id === folder)?.label}</a>
        <span class="spacer" />
        <button class="btn" onClick={reply}>↩ Reply</button>
        <button class="btn" onClick={forward}>↪ Forward</button>
        {folder === 'inbox' && <button class="btn" onClick={() => move('archive')}>Archive</button>}
        {folder === 'archive' && <button class="btn" onClick={() => move('inbox')}>Move to inbox</button>}
        <button class="btn btn-danger-ghost" onClick={remove}>Delete</button>
      </div>
      <h1 id="msg-subject">{o.head.subject || '(no subject)'}</h1>
      <div class="sender-card">
        <span class="avatar avatar-lg" aria-hidden="true">{initials(o.envelope.from)}</span>
        <div class="sender-info">
          <div class="sender-line"><strong data-testid="sender">{o.envelope.from}</strong>
            {o.arrived?.arrival?.submitted
              ? <span class="badge badge-partial" data-testid="via-gateway" title="Sent from a mail program through your organisation's gateway, logged in with an app password: the node vouches for the sender, not the sender's own key">Sent from a mail program{o.arrived.entity.fromName ? ` · ${o.arrived.entity.fromName}` : ''}</span>
              : o.arrived
              ? <span class="badge badge-unverified" data-testid="via-smtp" title="It came from outside over SMTP; no Sealpost key vouches for its sender">Arrived by mail{o.arrived.entity.fromName ? ` · ${o.arrived.entity.fromName}` : ''}</span>
              : o.item.via === 'pickup'
              // A reply from the pickup page: the outsider has no key of their own; what
              // authenticates it is the unlock code the sender gave them (docs/pickup.md).
              ? <span class="badge badge-partial" data-testid="via-pickup" title="Signed with the key your message to them was encrypted to, which only their unlock code opens">Authenticated by the unlock code you gave them</span>
              : verdict === undefined ? <span class="badge badge-unverified">Checking trust…</span> : <Badge verdict={verdict} onOpen={() => setShowPath(!showPath)} />}
          </div>
          <div class="muted small">to {o.head.to.join(', ')} · {fullDate(o.head.sent_at)}</div>
          {complianceOpens.length > 0 && <div class="delivery-line small" data-testid="compliance-opened"><span class="muted">Opened for your organisation's compliance archive:</span> {complianceOpens.map(fullDate).join(', ')}</div>}
          {DELIVERY_ORDER.map((mode) => {
            const rows = delivery.filter((d) => deliveryMode(d, pickupOf) === mode);
            return rows.length > 0 && <div class="delivery-line small" data-testid="delivery" data-mode={mode}><span class="muted">{MODE_HEADINGS[mode]}:</span> <DeliveryChips delivery={rows} long /></div>;
          })}
          {pickupRows.length > 0 && (
            <div class="delivery-line small" data-testid="pickup-delivery"><span class="muted">By unlock code:</span> <DeliveryChips delivery={pickupRows} long />
              {pickupRows.filter((d) => UNREAD.includes(d.state)).map((d) => (
                <div class="pickup-actions" data-testid="pickup-actions" data-address={d.address}>
                  {d.state === 'locked' && <div class="muted" data-testid="pickup-locked-note">Too many wrong codes were typed for {d.address}: the message is locked. Make a new code and give it to them by phone, SMS or letter.</div>}
                  <button class="btn btn-sm" disabled={pickupBusy !== null} onClick={() => relock(d.address)} data-testid="pickup-relock">{pickupBusy === d.address ? 'Working…' : `New unlock code for ${d.address}`}</button>
                  <button class="btn btn-sm btn-danger-ghost" disabled={pickupBusy !== null} onClick={() => withdraw(d.address)} data-testid="pickup-withdraw">Withdraw</button>
                </div>
              ))}
              <ErrorBox error={pickupError} />
            </div>
          )}
          {o.arrived ? (
            <div class="sig-line small" data-testid="signature-status">
              {o.arrived.arrival?.submitted ? <>Not signed with the sender's own key: your organisation's node vouches that {o.envelope.from} logged in to send it.</> : o.arrived.signedBy.length ? <>Carries an OpenPGP signature by key {o.arrived.signedBy.join(', ')}, which Sealpost does not know: not checked.</> : <>Not signed with a key Sealpost knows: who sent it is only as sure as the checks below.</>}
            </div>
          ) : (
            <div class="sig-line small" data-testid="signature-status">
              <span class="ok">✔ Signed by {o.envelope.from}</span> with key {o.signer.replace(/(.{4})(?=.)/g, '$1 ').slice(-24)} · signature and content checked
            </div>
          )}
        </div>
      </div>
      {showPath && verdict && (
        <div class={`path-panel path-${b.kind}`} data-testid="path-panel">
          <h2 class="h4">Why Sealpost says “{b.detail}”</h2>
          <TrustPath verdict={verdict} />
          <p class="muted small">Each arrow is a certification: the one on the left vouches that the key on the right belongs to that address.
            {b.kind !== 'verified' && <> To verify this sender yourself, <a href={`#/contacts?address=${encodeURIComponent(o.envelope.from)}`}>compare fingerprints with them</a>.</>}</p>
        </div>
      )}
      {(o.raw.compliance ?? []).length > 0 && (
        <div class="alert alert-info small" data-testid="compliance-copy" data-domains={(o.raw.compliance ?? []).join(' ')}>
          A copy of this message went to the compliance archive of {(o.raw.compliance ?? []).join(', ')}: encrypted to the archive's key, which only that organisation's authorised compliance staff can open.
        </div>
      )}
      {o.raw.compliance_pending && (
        <div class="alert alert-warn small" data-testid="compliance-pending">
          Not yet in your organisation's compliance archive: this message is encrypted to you only (it arrived that way) and waits for its copy.
        </div>
      )}
      {o.arrived && <ArrivalMark arrival={o.arrived.arrival} />}
      {o.raw.registered?.state === 'accepted' && (
        <div class="alert alert-info small" data-testid="registered-accepted">Registered mail: you signed a receipt when you opened it. Your node keeps it as evidence for {o.envelope.from}.</div>
      )}
      {mine && (o.envelope.registered ?? []).length > 0 && <EvidencePanel id={id} registered={o.envelope.registered ?? []} />}
      {answers && (
        <div class="thread-line small" data-testid="in-reply-to">In reply to your message <a href={`#/mail/sent/${answers.id}`}>“{answers.subject || '(no subject)'}”</a></div>
      )}
      <div class="body" data-testid="body">{o.head.body}</div>
      {o.arrived?.entity.hasHtml && !o.arrived.entity.text && <p class="muted small">This mail came as HTML only: shown as text.</p>}
      <AttachmentList attachments={o.head.attachments} progress={progress} error={attError} onDownload={download} note={o.arrived ? 'decrypted with the mail' : 'encrypted'} />
      {replies.length > 0 && (
        <div class="replies" data-testid="replies">
          <h2 class="h4">Replies by mail</h2>
          <ul>{replies.map((r) => <li data-testid="reply-item"><a href={`#/mail/inbox/${r.id}`}>{r.from}: “{r.subject || '(no subject)'}”</a></li>)}</ul>
        </div>
      )}
    </article>
  );
}

/** The sender's delivery lines, one per mode (pickups have their own, with actions). */
const DELIVERY_ORDER: DeliveryMode[] = ['remote', 'openpgp', 'smime', 'tls'];

/** The SPF, DKIM and DMARC results (RFC 8601 words) in plain words. */
function authWords(check: 'spf' | 'dkim' | 'dmarc', result: string, domain: string): string {
  const d = domain || 'the sender\'s domain';
  const words: Record<string, Record<string, string>> = {
    spf: {
      pass: `passed: ${d} allows the server that sent it`,
      fail: `failed: ${d} does not allow the server that sent it`,
      softfail: `soft fail: ${d} discourages mail from the server that sent it`,
      neutral: `neutral: ${d} says nothing about the server that sent it`,
      none: `none: ${d} publishes no SPF record, or it was not checked`,
    },
    dkim: {
      pass: 'passed: signed by the sending domain, and the signature is valid',
      fail: 'failed: a signature is there but does not verify (the mail may have been altered)',
      neutral: 'neutral: a signature is there that says nothing',
      none: 'none: not signed by the sending domain',
    },
    dmarc: {
      pass: 'passed: the domain in the From address is confirmed',
      fail: 'failed: the domain in the From address is not confirmed, so the sender may be forged',
      none: 'none: the sender\'s domain publishes no policy, or it was not checked',
    },
  };
  const common: Record<string, string> = { temperror: 'could not be checked (a temporary DNS error)', permerror: 'could not be checked (the domain\'s records are broken)' };
  return words[check][result] ?? common[result] ?? result;
}

/** How a mail that came by SMTP arrived: unencrypted or not, and the transport checks. */
function ArrivalMark({ arrival: a }: { arrival: Arrival | null }) {
  if (!a) return null;
  if (a.submitted) {
    return (
      <div class="alert alert-info arrival" data-testid="arrival" data-submitted="true">
        <strong data-testid="arrival-mark">Sent from a mail program</strong>{' '}
        {a.mail_from} sent it from their mail program through your organisation's submission gateway, logged in with an app password. The node sealed it for each recipient, so it saw the content in passing (it keeps no plain copy); it carries no signature of the sender's own key.
      </div>
    );
  }
  const domain = a.mail_from.split('@')[1] ?? '';
  return (
    <div class={`alert ${a.encrypted ? 'alert-info' : 'alert-warn'} arrival`} data-testid="arrival" data-encrypted={String(a.encrypted)}>
      <strong data-testid="arrival-mark">{a.encrypted ? 'Arrived encrypted' : 'Arrived unencrypted'}</strong>{' '}
      {a.encrypted
        ? 'The sender encrypted it to your key (OpenPGP) before it left them.'
        : 'It crossed the internet as ordinary mail, readable by the mail servers on its way. Your node encrypted it to your key on arrival and keeps no plain copy.'}
      <ul class="small">
        <li data-testid="arrival-tls">{a.tls ? 'Reached your node over an encrypted connection (TLS).' : 'Reached your node over an unencrypted connection (no TLS).'}</li>
        <li data-testid="arrival-spf">Sending server (SPF): {authWords('spf', a.spf, domain)}.</li>
        <li data-testid="arrival-dkim">Domain signature (DKIM): {authWords('dkim', a.dkim, domain)}.</li>
        <li data-testid="arrival-dmarc">Sender's domain (DMARC): {authWords('dmarc', a.dmarc, domain)}.</li>
        <li data-testid="arrival-mail-from">Envelope sender: {a.mail_from || '(none: a bounce)'}</li>
      </ul>
    </div>
  );
}

/** Pickup states in which the recipient has not read the message: it can still be withdrawn
 * or given a new code. */
const UNREAD = ['pickup', 'notified', 'opened', 'locked'];

/** A message registered for the reader, not open: the notice and the decision, before any part
 * is fetched (docs/evidence.md, "Registered mail"). Accept signs the acceptance receipt and
 * opens it; Refuse signs a refusal, after which it stays closed for good. */
function RegisteredGate({ session, folder, closed, onAccepted, onRefused }: { session: Session; folder: api.Folder; closed: client.RegisteredClosed; onAccepted: () => void; onRefused: (c: client.RegisteredClosed) => void }) {
  const [busy, setBusy] = useState<client.ReceiptDecision | null>(null);
  const [error, setError] = useState<unknown>(null);
  const env = closed.envelope;
  const decide = async (d: client.ReceiptDecision) => {
    if (d === 'refuse' && !confirm(`Refuse this registered message from ${env.from}? Your signed refusal is kept as evidence, and the message can never be opened afterwards.`)) return;
    setBusy(d);
    setError(null);
    try {
      await client.decideRegistered(session, closed, d);
      if (d === 'accept') onAccepted();
      else onRefused(new client.RegisteredClosed('refused', env, closed.notice));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const back = <a href={`#/mail/${folder}`} class="back">← {FOLDERS.find((f) => f.id === folder)?.label}</a>;
  const from = <div class="sender-card"><span class="avatar avatar-lg" aria-hidden="true">{initials(env.from)}</span><div class="sender-info"><strong data-testid="sender">{env.from}</strong><div class="muted small">sent {fullDate(env.created_at)} · the sender's signature on the envelope checked</div></div></div>;
  if (closed.state === 'refused') {
    return (
      <article class="reader" data-testid="registered-refused">
        <div class="reader-actions">{back}</div>
        <h1>You refused this registered message</h1>
        {from}
        <div class="alert alert-info">You signed a refusal: your node keeps it as evidence for {env.from}, and the message stays closed. Nothing of its content was fetched to this device.</div>
      </article>
    );
  }
  return (
    <article class="reader" data-testid="registered-gate">
      <div class="reader-actions">{back}</div>
      <h1>Registered message</h1>
      {from}
      <div class="alert alert-warn registered-notice" data-testid="registered-notice">
        <strong>Registered: opening it confirms receipt.</strong>{' '}
        {env.from} sent this as registered mail. To open it, you sign a receipt with your key (the message, its encrypted parts and the time), which your node keeps and shows {env.from} as evidence. You may refuse it instead: then you sign a refusal and it stays closed. Its subject and content are not fetched until you decide.
      </div>
      <ErrorBox error={error} title="Not done." />
      <div class="row">
        <button class="btn btn-primary" disabled={busy !== null} onClick={() => decide('accept')} data-testid="registered-accept">{busy === 'accept' ? <><span class="spinner" aria-hidden="true" /> Signing the receipt…</> : 'Accept and open'}</button>
        <button class="btn btn-danger-ghost" disabled={busy !== null} onClick={() => decide('refuse')} data-testid="registered-refuse">{busy === 'refuse' ? 'Signing the refusal…' : 'Refuse'}</button>
      </div>
    </article>
  );
}

/** The sender's evidence of a registered message: the bundle (`GET /messages/{id}/evidence`)
 * saved as `evidence-ID.json`, and what `pending` means. */
function EvidencePanel({ id, registered }: { id: string; registered: string[] }) {
  const [busy, setBusy] = useState(false);
  const [pending, setPending] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const e = await client.evidence(id);
      saveBlob(new Blob([JSON.stringify(e.bundle, null, 2) + '\n'], { type: 'application/json' }), `evidence-${id}.json`);
      setPending(e.pending);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="alert alert-info small evidence-panel" data-testid="evidence">
      <div><strong>Registered</strong> for {registered.join(', ')}: they open it by signing a receipt, or refuse it with a signed refusal.</div>
      <div class="row">
        <button class="btn btn-sm" disabled={busy} onClick={save} data-testid="evidence-download">{busy ? 'Fetching…' : 'Download evidence'}</button>
        <span class="muted">One JSON file: the nodes' signed records, time-stamps and proofs; check it with <code>sealpost evidence verify</code>.</span>
      </div>
      {pending !== null && (pending > 0
        ? <div data-testid="evidence-pending" data-pending={pending}>{pending} record{pending === 1 ? ' is' : 's are'} pending: not sealed yet. Your node seals its records at each checkpoint (it signs a batch of them and has a time-stamping authority stamp it) when it is configured with one; until then they are in the file but cannot be checked. Download it again later.</div>
        : <div data-testid="evidence-pending" data-pending="0">Every record is sealed: signed and time-stamped.</div>)}
      <ErrorBox error={error} />
    </div>
  );
}
