/** Shapes of the Alliance API as the document shows them (src: ../shared/seed/alliance-api.txt). */

export const PAYMENT_METHODS = ['IMPS', 'NEFT', 'RTGS', 'UPI'] as const;
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];

/** The API's transaction statuses. */
export const API_STATUSES = ['Pending', 'Approved', 'Rejected'] as const;
export type ApiStatus = (typeof API_STATUSES)[number];

export const API_PATHS = {
  balance: 'api/v1/balance',
  payinStatus: 'api/v1/payin/transactions',
  initiatePayout: 'api/v1/payout/initiate',
  payoutStatus: (orderId: string) => `api/v1/payout/${encodeURIComponent(orderId)}/status`,
} as const;

/** Every response: {error, data, message, success}. */
export interface Envelope<T> {
  error: unknown;
  data: T;
  message: string;
  success: boolean;
}

/** The body of POST api/v1/payout/initiate, in the key order the document shows. */
export interface PayoutRequestBody {
  beneficiary_name: string;
  beneficiary_email: string;
  beneficiary_mobile_no: string | number;
  beneficiary_address: string;
  payment_method: PaymentMethod;
  beneficiary_acc_no: string;
  bank_name: string;
  ifsc: string;
  /** Rupees as a JSON number with at most two decimals. */
  amount: number;
  order_id: string;
  user_id: string;
  remarks: string | null;
}

/** What the program passes to initiatePayout: money in paise. */
export interface PayoutRequest {
  beneficiaryName: string;
  beneficiaryEmail: string;
  beneficiaryMobile: string;
  beneficiaryAddress: string;
  paymentMethod: PaymentMethod;
  accountNumber: string;
  bankName: string;
  ifsc: string;
  amountPaise: bigint;
  orderId: string;
  userId: string;
  remarks: string | null;
}

/** A payout as the program sees it after parsing an initiate or status response. */
export interface PayoutInfo {
  orderId: string;
  status: ApiStatus;
  /** UTR once approved; null before. */
  transactionId: string | null;
  amountPaise: bigint | null;
  chargePaise: bigint | null;
  message: string | null;
  raw: Record<string, unknown>;
}

export interface PayinInfo {
  orderId: string;
  userId: string | null;
  /** As the API says it: 'Pending' | 'Approved' | 'Rejected' (a webhook's 'Initiated' is Pending). */
  status: string;
  /** The UTR. */
  transactionId: string | null;
  /** Received (final) amount; 0 for a rejected payin in practice. */
  amountPaise: bigint | null;
  requestAmountPaise: bigint | null;
  method: string | null;
  comments: string | null;
  /** "2025-08-04 16:58:30": no zone in the document (India time in practice); kept as text. */
  timeOfProcessing: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  bankUpi: string | null;
  bankName: string | null;
  /** Every field the API returned, unchanged. */
  raw: Record<string, unknown>;
}

export interface Balance {
  balancePaise: bigint;
  raw: string;
}
