import { runService } from '@civildiy/common/runtime';
import { feedService } from './service.ts';

await runService(feedService);
