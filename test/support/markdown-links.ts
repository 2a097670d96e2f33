/**
 * Relative links in Markdown files that lead nowhere: a file that does not exist, or a `#fragment` that no
 * heading of the target file makes (headings turned into fragments as GitHub does: lower case, punctuation
 * dropped, each space a hyphen, `-1`, `-2`... for repeats). Links inside fenced code blocks are not links.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Every `.md` file under `root`, skipping `node_modules`, `dist` and dot-folders. */
export function markdownFiles(root: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(root, entry.name);
    if (entry.isDirectory()) files.push(...markdownFiles(path));
    else if (entry.name.endsWith('.md')) files.push(path);
  }
  return files;
}

function withoutCode(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '');
}

function fragmentOf(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const fragmentsByFile = new Map<string, Set<string>>();

function fragmentsOf(file: string): Set<string> {
  let fragments = fragmentsByFile.get(file);
  if (fragments === undefined) {
    fragments = new Set();
    const repeats = new Map<string, number>();
    for (const match of withoutCode(readFileSync(file, 'utf8')).matchAll(/^#{1,6}[ \t]+(.*)$/gm)) {
      const fragment = fragmentOf(match[1]!);
      const seen = repeats.get(fragment) ?? 0;
      repeats.set(fragment, seen + 1);
      fragments.add(seen === 0 ? fragment : `${fragment}-${seen}`);
    }
    fragmentsByFile.set(file, fragments);
  }
  return fragments;
}

/** The broken relative links of `files`, each as "file: link (why)", paths relative to `root`. */
export function brokenLinks(root: string, files: string[]): string[] {
  const broken: string[] = [];
  for (const file of files) {
    for (const match of withoutCode(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto: ...
      const [path = '', fragment] = link.split('#');
      const target = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      const where = `${relative(root, file)}: ${link}`;
      if (!existsSync(target)) broken.push(`${where} (no such file)`);
      else if (fragment !== undefined && target.endsWith('.md') && !fragmentsOf(target).has(fragment))
        broken.push(`${where} (no such heading)`);
    }
  }
  return broken;
}
