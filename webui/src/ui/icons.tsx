// Small inline SVG icons (no icon font or emoji font needed).
import type { ReactElement } from 'react';

type P = { size?: number; className?: string; title?: string };

function svg(paths: ReactElement, { size = 14, className, title }: P, filled = false) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 16 16"
      className={className ? `icon ${className}` : 'icon'}
      aria-hidden={title ? undefined : true}
      role={title ? 'img' : undefined}
      fill={filled ? 'currentColor' : 'none'}
      stroke={filled ? 'none' : 'currentColor'}
      strokeWidth={1.6}
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      {title ? <title>{title}</title> : null}
      {paths}
    </svg>
  );
}

export const IconFirst = (p: P) => svg(<path d="M4 3v10M12 3L6 8l6 5z" />, p);
export const IconPrev = (p: P) => svg(<path d="M11 3L5 8l6 5z" />, p);
export const IconNext = (p: P) => svg(<path d="M5 3l6 5-6 5z" />, p);
export const IconLast = (p: P) => svg(<path d="M12 3v10M4 3l6 5-6 5z" />, p);
export const IconLlm = (p: P) =>
  svg(<path d="M8 1.5l1.6 4.1 4.1 1.6-4.1 1.6L8 13l-1.6-4.2L2.3 7.2l4.1-1.6zM13 11.5l.6 1.4 1.4.6-1.4.6-.6 1.4-.6-1.4-1.4-.6 1.4-.6z" />, p);
export const IconTool = (p: P) => svg(<path d="M10.5 2a3.5 3.5 0 00-3.3 4.6L2.5 11.3a1.4 1.4 0 002 2l4.7-4.7A3.5 3.5 0 0014 5.3l-2 2-2-.3-.3-2 2-2A3.5 3.5 0 0010.5 2z" />, p);
export const IconRouter = (p: P) => svg(<path d="M2 8h4l3-4h5M9 12l-3-4M11 2l3 2-3 2M11 10l3 2-3 2M9 12h5" />, p);
export const IconAggregator = (p: P) => svg(<path d="M2 3l5 5-5 5M14 8H7M10 5l3 3-3 3" />, p);
export const IconValidator = (p: P) => svg(<path d="M8 1.5l5.5 2v4c0 3.3-2.4 5.8-5.5 7-3.1-1.2-5.5-3.7-5.5-7v-4zM5.5 8l2 2 3.5-4" />, p);
export const IconHuman = (p: P) => svg(<path d="M8 7a2.5 2.5 0 100-5 2.5 2.5 0 000 5zM3 14c.5-3 2.5-4.5 5-4.5s4.5 1.5 5 4.5" />, p);
export const IconCheckpoint = (p: P) => svg(<path d="M3 2h8l2 2v10H3zM5 2v4h5V2M5 10h6" />, p);
export const IconTransform = (p: P) => svg(<path d="M8 5.5a2.5 2.5 0 100 5 2.5 2.5 0 000-5zM8 1.5v2M8 12.5v2M1.5 8h2M12.5 8h2M3.4 3.4l1.4 1.4M11.2 11.2l1.4 1.4M3.4 12.6l1.4-1.4M11.2 4.8l1.4-1.4" />, p);
export const IconCustom = (p: P) => svg(<path d="M2 5l6-3 6 3v6l-6 3-6-3zM2 5l6 3 6-3M8 8v6" />, p);
export const IconStart = (p: P) => svg(<path d="M5 3l8 5-8 5z" />, p, true);
export const IconEnd = (p: P) => svg(<rect x="4" y="4" width="8" height="8" rx="1" />, p, true);
export const IconWarn = (p: P) => svg(<path d="M8 2l6.5 11.5h-13zM8 6.5v3.5M8 12v.1" />, p);
export const IconError = (p: P) => svg(<path d="M8 1.5a6.5 6.5 0 110 13 6.5 6.5 0 010-13zM5.5 5.5l5 5M10.5 5.5l-5 5" />, p);
export const IconCopy = (p: P) => svg(<path d="M5 5h8v9H5zM3 11V2h8" />, p);
export const IconParallel = (p: P) => svg(<path d="M5 2v12M11 2v12" />, p);

export function NodeTypeIcon({ type, size = 13 }: { type: string; size?: number }) {
  const t = type.split(':')[0];
  switch (t) {
    case 'llm':
      return <IconLlm size={size} className="ic-llm" />;
    case 'tool':
      return <IconTool size={size} className="ic-tool" />;
    case 'router':
      return <IconRouter size={size} className="ic-router" />;
    case 'aggregator':
      return <IconAggregator size={size} className="ic-agg" />;
    case 'validator':
      return <IconValidator size={size} className="ic-val" />;
    case 'human_in_loop':
      return <IconHuman size={size} className="ic-human" />;
    case 'checkpoint':
      return <IconCheckpoint size={size} className="ic-ckpt" />;
    case 'transform':
      return <IconTransform size={size} className="ic-transform" />;
    default:
      return <IconCustom size={size} className="ic-custom" />;
  }
}
