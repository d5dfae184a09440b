// What the sign-in screens share: their frame beside the product's promises, and the rule a
// new password must meet (at enrolment and when it is changed in Settings).
import { Icon, Logo } from './ui';

export function AuthFrame({ title, subtitle, children }: { title: string; subtitle?: string; children: any }) {
  return (
    <div class="auth">
      <div class="auth-brand">
        <div class="brand-row"><Logo size={40} /><span class="brand">Sealpost</span></div>
        <p class="auth-tagline">Confidential messages between organisations. Encrypted in your browser before they leave it.</p>
        <ul class="auth-points">
          <li><Icon name="lock" size={20} /> Your password and your key never leave this device.</li>
          <li><Icon name="shield" size={20} /> Every sender is verified, and you can see why.</li>
          <li><Icon name="log" size={20} /> Every step is recorded in a tamper-evident log.</li>
        </ul>
      </div>
      <main class="auth-card" aria-labelledby="auth-title">
        <h1 id="auth-title">{title}</h1>
        {subtitle && <p class="muted">{subtitle}</p>}
        {children}
      </main>
    </div>
  );
}

export function passwordProblem(pw: string, again: string, address: string): string | null {
  if (pw.length < 12) return 'Use at least 12 characters: a few unrelated words work well.';
  if (address && pw.toLowerCase().includes(address.split('@')[0].toLowerCase())) return 'Do not use your name or address in your password.';
  if (again && pw !== again) return 'The two passwords differ.';
  return null;
}
