import { runService } from '@civildiy/common/runtime';
import { gatewayService } from './service.ts';

await runService(gatewayService);
