// The two lists of files every reading and writing screen shows (the mailbox's and the pickup
// page's): a message's attachments, each downloaded, checked and decrypted on demand with its
// progress; and the files being sent, with their encryption and upload progress.
import { ErrorBox, Icon, Progress, bytes } from './ui';
import type { AttachmentMeta } from './api';

export type FileProgress = Record<number, { value: number; stage: string }>;

export function AttachmentList({ attachments, progress, error, onDownload, note }: { attachments: AttachmentMeta[]; progress: FileProgress; error: unknown; onDownload: (i: number) => void; note?: string }) {
  if (!attachments.length) return null;
  return (
    <div class="attachments">
      <h2 class="h4">{attachments.length} attachment{attachments.length > 1 ? 's' : ''}{note ? ` · ${note}` : ''}</h2>
      <ul>
        {attachments.map((a, i) => (
          <li class="attachment" data-testid="attachment">
            <span class="file-icon"><Icon name="file" size={22} /></span>
            <span class="att-main"><span class="att-name">{a.name}</span><span class="muted small">{bytes(a.size)}</span>
              {progress[i] !== undefined && <Progress value={progress[i].value} label={progress[i].stage} />}
            </span>
            <button class="btn" onClick={() => onDownload(i)} disabled={progress[i] !== undefined && progress[i].value < 1} aria-label={`Download ${a.name}`}>Download</button>
          </li>
        ))}
      </ul>
      <ErrorBox error={error} />
    </div>
  );
}

export function OutgoingFiles({ files, progress, sending, onRemove, testid }: { files: File[]; progress: FileProgress; sending: boolean; onRemove: (f: File) => void; testid: string }) {
  if (!files.length) return null;
  return (
    <ul class="file-list">
      {files.map((f, i) => (
        <li class="attachment" data-testid={testid}>
          <span class="file-icon"><Icon name="file" size={22} /></span>
          <span class="att-main"><span class="att-name">{f.name}</span><span class="muted small">{bytes(f.size)}</span>
            {progress[i] && <Progress value={progress[i].value} label={`${progress[i].stage} ${f.name}`} />}
          </span>
          {!sending && <button type="button" class="btn btn-ghost" aria-label={`Remove ${f.name}`} onClick={() => onRemove(f)}>Remove</button>}
        </li>
      ))}
    </ul>
  );
}
