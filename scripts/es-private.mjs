// Turns the TypeScript-`private` members of the classes in the given files into ES-private `#names`:
//   node scripts/es-private.mjs src/core/session.ts src/core/receive.ts ...
// Why: a minifier keeps property names, so every `this.scheduledSinceFlush` stays in a page's bundle, while
// `#names` are shortened to `#a`. That is most of what muxwire/web still needs to fit its 15 KB budget
// (docs/browser.md, "Bundle size"); files that several people edit at once are converted after their merge.
// Usages are found through the type checker's symbols (a `.name` of another class is left alone); a
// `private` constructor parameter becomes a `#field` assigned at the top of the constructor. Run `tsc` after:
// an access the checker cannot see (`(x as any).name`) fails to compile or, in tests, needs the same change.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const files = process.argv.slice(2).map((file) => path.resolve(file));
if (files.length === 0) {
  console.error('usage: node scripts/es-private.mjs <file.ts>...');
  process.exit(2);
}
const program = ts.createProgram(files, {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
});
const checker = program.getTypeChecker();
const isPrivate = (node) => (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.PrivateKeyword);

for (const file of files) {
  let text = readFileSync(file, 'utf8');
  const source = program.getSourceFile(file);
  /** [start, end, replacement], applied from the end so that offsets stay valid. */
  const edits = [];
  const classes = [];
  ts.forEachChild(source, function visit(node) {
    if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) classes.push(node);
    ts.forEachChild(node, visit);
  });
  for (const cls of classes) {
    const symbols = new Set();
    for (const member of cls.members) {
      const named =
        ts.isPropertyDeclaration(member) ||
        ts.isMethodDeclaration(member) ||
        ts.isGetAccessor(member) ||
        ts.isSetAccessor(member);
      if (named && isPrivate(member) && ts.isIdentifier(member.name)) {
        symbols.add(checker.getSymbolAtLocation(member.name));
        const modifier = ts.getModifiers(member).find((m) => m.kind === ts.SyntaxKind.PrivateKeyword);
        let end = modifier.end;
        while (text[end] === ' ') end++;
        edits.push([modifier.getStart(source), end, '']);
        edits.push([member.name.getStart(source), member.name.end, `#${member.name.text}`]);
      }
      if (!ts.isConstructorDeclaration(member)) continue;
      const moved = [];
      for (const parameter of member.parameters) {
        if (!isPrivate(parameter)) continue;
        const name = parameter.name.text;
        for (const symbol of checker.getSymbolsOfParameterPropertyDeclaration(parameter, name)) symbols.add(symbol);
        const modifiers = ts.getModifiers(parameter);
        let end = modifiers.at(-1).end;
        while (text[end] === ' ') end++;
        edits.push([modifiers[0].getStart(source), end, '']);
        const readonly = modifiers.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword) ? 'readonly ' : '';
        moved.push({
          field: `  ${readonly}#${name}${parameter.type ? `: ${parameter.type.getText(source)}` : ''};\n`,
          name,
        });
      }
      if (moved.length === 0) continue;
      const lineStart = text.lastIndexOf('\n', member.getStart(source)) + 1;
      edits.push([lineStart, lineStart, moved.map((m) => m.field).join('')]);
      const body = member.body;
      const assignments = moved.map((m) => `this.#${m.name} = ${m.name};`);
      if (body.statements.length === 0) {
        edits.push([body.getStart(source), body.end, `{\n${assignments.map((a) => `    ${a}\n`).join('')}  }`]);
      } else {
        const first = body.statements[0];
        const callsSuper =
          ts.isExpressionStatement(first) &&
          ts.isCallExpression(first.expression) &&
          first.expression.expression.kind === ts.SyntaxKind.SuperKeyword;
        const at = callsSuper ? first.end : body.getStart(source) + 1;
        edits.push([at, at, assignments.map((a) => `\n    ${a}`).join('')]);
      }
    }
    if (symbols.size === 0) continue;
    const rename = (node) => {
      if (
        ts.isPropertyAccessExpression(node) &&
        ts.isIdentifier(node.name) &&
        symbols.has(checker.getSymbolAtLocation(node.name))
      ) {
        edits.push([node.name.getStart(source), node.name.end, `#${node.name.text}`]);
      }
      ts.forEachChild(node, rename);
    };
    for (const member of cls.members) ts.forEachChild(member, rename);
  }
  edits.sort((a, b) => b[0] - a[0] || b[1] - a[1]);
  for (const [start, end, replacement] of edits) text = text.slice(0, start) + replacement + text.slice(end);
  writeFileSync(file, text);
  console.log(`${path.relative(process.cwd(), file)}: ${edits.length} edits`);
}
