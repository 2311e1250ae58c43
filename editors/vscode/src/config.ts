/** The `helios.*` settings, read with defaults and bounds. */
import { SERVER_LANGUAGES } from './languages';
import { clampMaxTokens, clampTemperature } from './request';

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8000';

export interface HeliosConfig {
  serverUrl: string;
  enable: boolean;
  enabledLanguages: string[];
  maxTokens: number;
  temperature: number;
  debounceMs: number;
  /** How long to wait for one suggestion. */
  timeoutMs: number;
  autoStart: boolean;
  serverCommand: string;
  /** Send other open and recently edited files as `context` (`helios.context.enabled`). */
  contextEnabled: boolean;
}

/** Anything with WorkspaceConfiguration's `get`. */
export interface ConfigSource {
  get<T>(key: string): T | undefined;
}

export function readConfig(source: ConfigSource): HeliosConfig {
  const languages = source.get<unknown>('enabledLanguages');
  const debounce = source.get<unknown>('debounceMs');
  const timeout = source.get<unknown>('timeoutMs');
  return {
    serverUrl: stringOr(source.get('serverUrl'), DEFAULT_SERVER_URL),
    enable: source.get<boolean>('enable') !== false,
    enabledLanguages: Array.isArray(languages)
      ? languages.filter((l): l is string => typeof l === 'string')
      : [...SERVER_LANGUAGES],
    maxTokens: clampMaxTokens(source.get('maxTokens')),
    temperature: clampTemperature(source.get('temperature')),
    debounceMs:
      typeof debounce === 'number' && Number.isFinite(debounce) ? Math.min(5000, Math.max(0, debounce)) : 75,
    timeoutMs:
      typeof timeout === 'number' && Number.isFinite(timeout) ? Math.min(300_000, Math.max(1000, timeout)) : 15_000,
    autoStart: source.get<boolean>('autoStart') !== false,
    serverCommand: stringOr(source.get('serverCommand'), 'helios'),
    contextEnabled: source.get<boolean>('context.enabled') !== false,
  };
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : fallback;
}
