/**
 * Lengths and areas on the CGCS2000 ellipsoid (a = 6378137 m, f = 1/298.257222101), for the
 * portal's measure tool. OpenLayers' ol/sphere is spherical (0.1-0.5 % off here).
 *
 * - Distance: Vincenty's inverse formula (1975), iterated to 1e-12 rad; it agrees with
 *   Karney's geodesics (pyproj.Geod) to well under a millimetre except for nearly antipodal
 *   points, where it may not converge (then `NaN`; a portal measures far shorter lines).
 * - Area: the polygon is mapped to the authalic sphere (equal-area latitude, radius R_q), where
 *   each edge's signed area to the pole is exact for a great circle; geodesic and authalic
 *   great-circle edges differ by far less than 0.01 % of the area for polygons of a city.
 */

export const A = 6378137;
export const F = 1 / 298.257222101;
const B = A * (1 - F);
const E2 = F * (2 - F);
const E = Math.sqrt(E2);
const RAD = Math.PI / 180;

/**
 * @param {number} lon1 Degrees.
 * @param {number} lat1 Degrees.
 * @param {number} lon2 Degrees.
 * @param {number} lat2 Degrees.
 * @return {number} The geodesic distance in metres (NaN if it did not converge).
 */
export function distance(lon1, lat1, lon2, lat2) {
  const L = (lon2 - lon1) * RAD;
  const U1 = Math.atan((1 - F) * Math.tan(lat1 * RAD));
  const U2 = Math.atan((1 - F) * Math.tan(lat2 * RAD));
  const sinU1 = Math.sin(U1); const cosU1 = Math.cos(U1);
  const sinU2 = Math.sin(U2); const cosU2 = Math.cos(U2);
  let lambda = L;
  for (let i = 0; i < 200; i++) {
    const sinL = Math.sin(lambda); const cosL = Math.cos(lambda);
    const sinSigma = Math.hypot(cosU2 * sinL, cosU1 * sinU2 - sinU1 * cosU2 * cosL);
    if (sinSigma === 0) {
      return 0;
    }
    const cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosL;
    const sigma = Math.atan2(sinSigma, cosSigma);
    const sinAlpha = cosU1 * cosU2 * sinL / sinSigma;
    const cos2Alpha = 1 - sinAlpha * sinAlpha;
    const cos2SigmaM = cos2Alpha === 0 ? 0 : cosSigma - 2 * sinU1 * sinU2 / cos2Alpha;
    const C = F / 16 * cos2Alpha * (4 + F * (4 - 3 * cos2Alpha));
    const prev = lambda;
    lambda = L + (1 - C) * F * sinAlpha * (sigma + C * sinSigma * (cos2SigmaM + C * cosSigma *
      (-1 + 2 * cos2SigmaM * cos2SigmaM)));
    if (Math.abs(lambda - prev) < 1e-12) {
      const u2 = cos2Alpha * (A * A - B * B) / (B * B);
      const k1 = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)));
      const Acoef = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)));
      const dSigma = k1 * sinSigma * (cos2SigmaM + k1 / 4 * (cosSigma * (-1 + 2 * cos2SigmaM *
        cos2SigmaM) - k1 / 6 * cos2SigmaM * (-3 + 4 * sinSigma * sinSigma) *
        (-3 + 4 * cos2SigmaM * cos2SigmaM)));
      return B * Acoef * (sigma - dSigma);
    }
  }
  return NaN;
}

/**
 * @param {Array<Array<number>>} path [[lon, lat], ...].
 * @return {number} Its length in metres.
 */
export function pathLength(path) {
  let total = 0;
  for (let i = 1; i < path.length; i++) {
    total += distance(path[i - 1][0], path[i - 1][1], path[i][0], path[i][1]);
  }
  return total;
}

/**
 * The direct problem (Vincenty 1975): where a geodesic from a point along an azimuth ends.
 * @param {number} lon Degrees.
 * @param {number} lat Degrees.
 * @param {number} azimuth Degrees clockwise from north.
 * @param {number} metres The distance.
 * @return {Array<number>} [lon, lat] in degrees.
 */
export function destination(lon, lat, azimuth, metres) {
  const alpha1 = azimuth * RAD;
  const sinA1 = Math.sin(alpha1); const cosA1 = Math.cos(alpha1);
  const tanU1 = (1 - F) * Math.tan(lat * RAD);
  const cosU1 = 1 / Math.sqrt(1 + tanU1 * tanU1); const sinU1 = tanU1 * cosU1;
  const sigma1 = Math.atan2(tanU1, cosA1);
  const sinAlpha = cosU1 * sinA1;
  const cos2Alpha = 1 - sinAlpha * sinAlpha;
  const u2 = cos2Alpha * (A * A - B * B) / (B * B);
  const Acoef = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)));
  const Bcoef = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)));
  let sigma = metres / (B * Acoef);
  let sinS = 0; let cosS = 1; let cos2SM = 0;
  for (let i = 0; i < 200; i++) {
    cos2SM = Math.cos(2 * sigma1 + sigma);
    sinS = Math.sin(sigma); cosS = Math.cos(sigma);
    const dSigma = Bcoef * sinS * (cos2SM + Bcoef / 4 * (cosS * (-1 + 2 * cos2SM * cos2SM) -
      Bcoef / 6 * cos2SM * (-3 + 4 * sinS * sinS) * (-3 + 4 * cos2SM * cos2SM)));
    const next = metres / (B * Acoef) + dSigma;
    if (Math.abs(next - sigma) < 1e-12) {
      sigma = next;
      break;
    }
    sigma = next;
  }
  sinS = Math.sin(sigma); cosS = Math.cos(sigma);
  cos2SM = Math.cos(2 * sigma1 + sigma);
  const x = sinU1 * sinS - cosU1 * cosS * cosA1;
  const lat2 = Math.atan2(sinU1 * cosS + cosU1 * sinS * cosA1,
    (1 - F) * Math.sqrt(sinAlpha * sinAlpha + x * x));
  const lambda = Math.atan2(sinS * sinA1, cosU1 * cosS - sinU1 * sinS * cosA1);
  const C = F / 16 * cos2Alpha * (4 + F * (4 - 3 * cos2Alpha));
  const L = lambda - (1 - C) * F * sinAlpha * (sigma + C * sinS * (cos2SM + C * cosS *
    (-1 + 2 * cos2SM * cos2SM)));
  return [lon + L / RAD, lat2 / RAD];
}

/** q(φ) of the authalic latitude (Snyder 1987, eq. 3-12). */
function q(sinPhi) {
  const es = E * sinPhi;
  return (1 - E2) * (sinPhi / (1 - es * es) - Math.log((1 - es) / (1 + es)) / (2 * E));
}

const QP = q(1);
const RQ = A * Math.sqrt(QP / 2); // the authalic radius

/**
 * @param {number} lat Degrees.
 * @return {number} The authalic latitude in radians.
 */
function authalic(lat) {
  return Math.asin(Math.max(-1, Math.min(1, q(Math.sin(lat * RAD)) / QP)));
}

/**
 * @param {Array<Array<number>>} ring [[lon, lat], ...], closed or not.
 * @return {number} The area enclosed, in square metres (either orientation).
 */
export function ringArea(ring) {
  const pts = ring.length > 1 && ring[0][0] === ring[ring.length - 1][0] &&
    ring[0][1] === ring[ring.length - 1][1] ? ring.slice(0, -1) : ring;
  if (pts.length < 3) {
    return 0;
  }
  let excess = 0;
  for (let i = 0; i < pts.length; i++) {
    const [lon1, lat1] = pts[i];
    const [lon2, lat2] = pts[(i + 1) % pts.length];
    let dLon = (lon2 - lon1) * RAD;
    dLon = Math.atan2(Math.sin(dLon), Math.cos(dLon)); // across the antimeridian too
    const t1 = Math.tan(authalic(lat1) / 2);
    const t2 = Math.tan(authalic(lat2) / 2);
    excess += 2 * Math.atan2(Math.tan(dLon / 2) * (t1 + t2), 1 + t1 * t2);
  }
  return Math.abs(excess) * RQ * RQ;
}

/**
 * @param {number} value Degrees.
 * @param {string} pos Hemisphere letter when >= 0 (E, N).
 * @param {string} neg Hemisphere letter when < 0 (W, S).
 * @return {string} 120°12′46.80″E
 */
export function dms(value, pos, neg) {
  const hundredths = Math.round(Math.abs(value) * 360000); // of an arc second
  const d = Math.floor(hundredths / 360000);
  const m = Math.floor((hundredths % 360000) / 6000);
  const s = (hundredths % 6000) / 100;
  return `${d}°${String(m).padStart(2, '0')}′${s.toFixed(2).padStart(5, '0')}″` +
    (value < 0 ? neg : pos);
}
