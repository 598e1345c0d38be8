import { loadConfigOrExit } from '@civildiy/common';
import { mockProvidersEnv } from './config.ts';
import { runMockProviders } from './service.ts';

await runMockProviders(loadConfigOrExit(mockProvidersEnv));
