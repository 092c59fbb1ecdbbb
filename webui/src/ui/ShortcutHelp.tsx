import { useEffect, useRef } from 'react';

const KEYS: [string, string][] = [
  ['?', 'show or hide this help'],
  ['g r / g h', 'go to runs / health'],
  ['/', 'focus search (runs filter or state search)'],
  ['↑ ↓ or j k', 'move in the run list; Enter opens'],
  ['← → or h l', 'previous / next node visit'],
  ['Home / End', 'first / last visit'],
  ['PageUp / PageDown', '10 visits back / forward'],
  ['e / E', 'next / previous error'],
  ['f', 'follow live (pinned to this run)'],
  ['1 2 3', 'state / diff / details tab'],
  ['Esc', 'back to the run list'],
];

export function ShortcutHelp({ onClose }: { onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal" role="dialog" aria-modal="true" aria-label="Keyboard shortcuts" tabIndex={-1} ref={ref} onClick={(e) => e.stopPropagation()}>
        <h2>Keyboard shortcuts</h2>
        <table className="keys">
          <tbody>
            {KEYS.map(([k, d]) => (
              <tr key={k}>
                <td>
                  <kbd>{k}</kbd>
                </td>
                <td>{d}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <button className="btn" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}
