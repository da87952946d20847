/**
 * @module geoplat/http
 * GET requests to a node; a failure rejects with the server's problem detail.
 */
import GeoplatError, {networkError, problemFromResponse} from './GeoplatError.js';

/**
 * GET `url`; the response if ok.
 * @param {string} url The URL (with its key).
 * @param {RequestInit} [init] fetch options (credentials are never sent by default).
 * @return {Promise<Response>} The response.
 */
export async function get(url, init) {
  let response;
  try {
    response = await fetch(url, {credentials: 'omit', ...init});
  } catch (cause) {
    throw networkError(cause, url);
  }
  if (!response.ok) {
    throw await problemFromResponse(response, url);
  }
  return response;
}

/**
 * GET `url` as JSON.
 * @param {string} url The URL.
 * @param {RequestInit} [init] fetch options.
 * @return {Promise<any>} The parsed body.
 */
export async function getJson(url, init) {
  const response = await get(url, {headers: {Accept: 'application/json'}, ...init});
  try {
    return await response.json();
  } catch {
    throw new GeoplatError({status: response.status, title: 'Bad response',
      detail: 'The answer is not JSON.', url});
  }
}

/**
 * GET `url` as text.
 * @param {string} url The URL.
 * @return {Promise<string>} The body.
 */
export async function getText(url) {
  return (await get(url)).text();
}
