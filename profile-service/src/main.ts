import { runService } from '@civildiy/common/runtime';
import { profileService } from './service.ts';

await runService(profileService);
