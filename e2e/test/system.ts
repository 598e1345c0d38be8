import { startSystem, type SystemUnderTest } from '@civildiy/common/testing';

export { repositoryRoot as root } from '@civildiy/common/testing';
export type System = SystemUnderTest;
export { startSystem };

export { httpCall as call, registerUser, TEST_PASSWORD as PASSWORD, type RegisteredUser } from '@civildiy/common/testing';

/** Gateway settings for flows that are not about rate limits (the gateway's own tests cover them). */
export const UNLIMITED_GATEWAY = {
  GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '1000000',
  GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '1000000',
  GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0',
};
