// Secrets made by a real PostgreSQL 15.20: a throwaway cluster (initdb -E UTF8 --locale=C), then
// `SET password_encryption = 'scram-sha-256'; CREATE ROLE <name> PASSWORD U&'...';` and
// `SELECT rolpassword FROM pg_authid`. Each note says what PostgreSQL's SASLprep did. For the
// SCRAM and SASLprep tests; not exported from index.ts: tests import this file by path.
export const POSTGRES_SECRETS: Array<[password: string, note: string, secret: string]> = [
  [
    'pencil',
    'ASCII, untouched',
    'SCRAM-SHA-256$4096:jVxi5vdgB2MIbp833opf4Q==$' +
      '6ruEZ2FgshvMa+3PWbOBPtfuY+3jNP2SQx4eLCwvNpw=:dV6V1Wo34yGoIU9Cvx9e5Bt3xdb+ndu5HoKPQT53TOE=',
  ],
  [
    'I\u00ADX',
    'soft hyphen mapped to nothing: IX',
    'SCRAM-SHA-256$4096:MuKqc4KIQLYPQJztjLhrHg==$' +
      'ZPSUfMi5OImxUOzARIgsuHrClwG52zZJ0jPeci/TNCw=:6rPgKwClMDC9DJ6oU9BlCklG0lU7wRW8JczsyuLO8I4=',
  ],
  [
    '\u2178',
    'NFKC: ix',
    'SCRAM-SHA-256$4096:1phTtgWzm8CTKCWdyapHOA==$' +
      'xoseM/0p09h8u0dxRNGXUFI607IKdHprE2acQx3RU4M=:WYj1tv5fet+GEWw5wZFRNiRBxUGspIm9ZjKOvj9N8gQ=',
  ],
  [
    'a\u00A0\u2178',
    'no-break space mapped to space: a ix',
    'SCRAM-SHA-256$4096:7hMKlsuad23BvJWGmjFXNQ==$' +
      '+bzETUCLdDkJ1l3R+FxU1N+D+SHijevvmuzuHwQWGCE=:sh9E++RHwUcQPp6t5LWXds9EcxCFIR2tSDuSIAx6dpM=',
  ],
  [
    '\u2178\u{1F600}',
    'emoji unassigned in Unicode 3.2: raw',
    'SCRAM-SHA-256$4096:LDEW3BEeDXVXYwGEs7Sedg==$' +
      'SvGFpJcaarw8kNbD4hIQAwCX8rK4LAi80Hn94k4mwOE=:pmYCDldrOGkS/BlYvGJfkE9MWSjBZtQSGzV1Jgg1+JY=',
  ],
  [
    '\u2178\u0221',
    'U+0221 unassigned in Unicode 3.2: raw',
    'SCRAM-SHA-256$4096:vgyCNmFHsP3QP/dr0faX/g==$' +
      'liC3+ZXRqn1uRMgOlRxEHHwI09ei7sLEKOou+Vu+zFs=:8GOsOS+mFfshpS6cnRtcqB7iI2Ds9nigRHkwdenwdPk=',
  ],
  [
    '\u2178\u0080',
    'control character prohibited: raw',
    'SCRAM-SHA-256$4096:BMlQYah/aEDQerOyGt4feA==$' +
      'YCOKZd9HtsXhTOrYO7EEn3SjR4KiyNH6o+EqC8Ovkqo=:0+nJtFt+peGO7V+shLNso2TU1MVJToEIPC/F/oRyCKk=',
  ],
  [
    '\u05D0\uFB21',
    'right-to-left only, NFKC: two alefs',
    'SCRAM-SHA-256$4096:0pPDgWbkKUtwlLF0sIfzUQ==$' +
      '1LusaVkQ7HtxSwUcjj8ja0r4cPslq3zgkoITR0gIaXE=:JregbRxGbjR4etHIKXVXvtateGoKu7Z4c08pr8yvTUg=',
  ],
  [
    '\u05D0\u2178',
    'mixed bidi: raw',
    'SCRAM-SHA-256$4096:wjaQWfoYQqMiIW07GESl5g==$' +
      '02X8DthsRvWpQueLa6zvKVa01Aw6XSHnq1Cxc37CPI4=:R7o7O+XO67rwKgMbDls+T2sZh0sBchdLpSB94DzZHw0=',
  ],
  [
    '\u00AD',
    'empty after mapping: raw',
    'SCRAM-SHA-256$4096:78yTKJWFP557cTxNrU3eYQ==$' +
      'u3mWxx80ftOwJ+0wjVSapLqcAaTv+nYErUdwFnI2FRo=:kIKEV3AhAIwRPibqZIPe4Vvn8czPqU/FOxP6O3xcq0I=',
  ],
  [
    'a\tb',
    'ASCII with a control character, untouched',
    'SCRAM-SHA-256$4096:tU99b1AryMkpS9AkbB30/Q==$' +
      'Ttut6I85rle3UUgCT7u6D+sf0pRTwZQpvKAVsVbviMs=:3+6GYer0ONUV+CKxZ23vxkx7+fT6gppxyCRhNXNzMrg=',
  ],
];
