/**
 * The languages the Helios server documents, as VS Code language ids, and the file
 * extension each one is named by (used to name untitled documents).
 */
export const SERVER_LANGUAGES = [
  'python',
  'javascript',
  'typescript',
  'java',
  'cpp',
  'c',
  'go',
  'rust',
  'html',
  'css',
  'json',
] as const;

export type ServerLanguage = (typeof SERVER_LANGUAGES)[number];

const EXTENSIONS: Record<ServerLanguage, string> = {
  python: '.py',
  javascript: '.js',
  typescript: '.ts',
  java: '.java',
  cpp: '.cpp',
  c: '.c',
  go: '.go',
  rust: '.rs',
  html: '.html',
  css: '.css',
  json: '.json',
};

/**
 * VS Code language ids that are dialects of a documented language. They are completed
 * only when the user lists them in `helios.enabledLanguages`; the server is told the
 * documented language.
 */
const DIALECTS: Record<string, ServerLanguage> = {
  javascriptreact: 'javascript',
  typescriptreact: 'typescript',
  jsonc: 'json',
};

/** The language to send for a VS Code language id, or undefined when the server has none. */
export function serverLanguage(languageId: string): ServerLanguage | undefined {
  if ((SERVER_LANGUAGES as readonly string[]).includes(languageId)) {
    return languageId as ServerLanguage;
  }
  return DIALECTS[languageId];
}

export function extensionFor(language: ServerLanguage): string {
  return EXTENSIONS[language];
}
